"""The usual fine-tuning recipe, as a baseline to measure tunebook against: the transformers `Trainer` with a PEFT LoRA
adapter (r=16, alpha=32, all linear layers), fp32, every example tokenized on its own and padded per batch by
`DataCollatorForLanguageModeling` (no packing). Prints real (non-pad) tokens per second, from step 2 on (the first
step is one-time warm-up), as one JSON line starting with {"baseline".

Usage: python bench/baseline_trainer_peft.py MODEL_DIR ALPACA_JSON [steps] [batch] [max_len]
(bench/bench_train.py runs it beside tunebook.train on the same data.)"""
import json, sys, tempfile, time, torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling,
                          Trainer, TrainingArguments, TrainerCallback)

model_dir, data = sys.argv[1], sys.argv[2]
steps, bs, max_len = (int(x) for x in (sys.argv[3:] + ["8", "8", "512"])[:3])
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(model_dir)
if tok.pad_token is None: tok.pad_token = tok.eos_token
rows = json.load(open(data))
# one chat-formatted string per example, tokenized one by one (truncated to max_len)
texts = [tok.apply_chat_template([{"role": "user", "content": r["instruction"]},
                                  {"role": "assistant", "content": r["output"]}], tokenize=False) for r in rows]
ds = Dataset.from_dict({"text": texts}).map(lambda b: tok(b["text"], truncation=True, max_length=max_len),
                                            batched=True, remove_columns=["text"])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))

timer = {"tokens": 0, "t0": None}  # real tokens collated after the first step, and when that step ended
class StartClock(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == 1 and timer["t0"] is None: timer["t0"] = time.time(); timer["tokens"] = 0
pad_per_batch = DataCollatorForLanguageModeling(tok, mlm=False)  # pads each batch to its longest row
def collate(feats):
    b = pad_per_batch(feats)
    if timer["t0"] is not None: timer["tokens"] += int(b["attention_mask"].sum())
    return b
args = TrainingArguments(tempfile.mkdtemp(prefix="baseline_"), per_device_train_batch_size=bs, max_steps=steps,
                         learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
                         use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, seed=0)
Trainer(model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[StartClock()]).train()
dt = time.time() - timer["t0"]
print(json.dumps({"baseline": "trainer+peft, per-batch padding", "steps_timed": steps - 1, "real_tokens": timer["tokens"],
                  "seconds": round(dt, 2), "real_tok_per_s": round(timer["tokens"] / dt, 1)}))

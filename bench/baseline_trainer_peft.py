"""The usual fine-tuning recipe, as a baseline to measure tunebook against: the transformers `Trainer` with a PEFT LoRA
adapter (r=16, alpha=32, all linear layers), fp32, every conversation rendered with the tokenizer's chat template,
tokenized on its own (truncated to max_len) and padded per batch by `DataCollatorForLanguageModeling` (no packing, loss
on every token). One epoch by default. Prints real (non-pad) tokens per second from step 2 on (the first step is
one-time warm-up) as one JSON line starting with {"baseline", and saves the adapter to OUT when given.

Usage: python bench/baseline_trainer_peft.py MODEL_DIR DATA_DIR [OUT] [--batch 8] [--max-len 512] [--epochs 1]
DATA_DIR is a prepared data folder (`tunebook prep`: dataset/ with a `train` split of chat `messages`).
(bench/bench_train.py runs it beside tunebook on the same data.)"""
import argparse, json, tempfile, time, torch
from datasets import load_from_disk
from peft import LoraConfig, get_peft_model
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling,
                          Trainer, TrainingArguments, TrainerCallback)

ap = argparse.ArgumentParser()
ap.add_argument('model_dir'); ap.add_argument('data_dir'); ap.add_argument('out', nargs='?')
ap.add_argument('--batch', type=int, default=8); ap.add_argument('--max-len', type=int, default=512)
ap.add_argument('--epochs', type=float, default=1.0)
a = ap.parse_args()
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(a.model_dir)
if tok.pad_token is None: tok.pad_token = tok.eos_token
rows = load_from_disk(f"{a.data_dir}/dataset")['train']
# one chat-formatted string per conversation, tokenized one by one (truncated to max_len)
texts = [tok.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in r["messages"]], tokenize=False)
         for r in rows]
ds = rows.from_dict({"text": texts}).map(lambda b: tok(b["text"], truncation=True, max_length=a.max_len),
                                         batched=True, remove_columns=["text"])
model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
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
args = TrainingArguments(tempfile.mkdtemp(prefix="baseline_"), per_device_train_batch_size=a.batch, num_train_epochs=a.epochs,
                         learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
                         use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, seed=0)
trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[StartClock()])
trainer.train()
dt = time.time() - timer["t0"]
if a.out: model.save_pretrained(a.out)
print(json.dumps({"baseline": "trainer+peft, per-batch padding", "steps": trainer.state.global_step,
                  "examples": len(ds), "real_tokens_timed": timer["tokens"], "seconds_timed": round(dt, 2),
                  "real_tok_per_s": round(timer["tokens"] / dt, 1)}))

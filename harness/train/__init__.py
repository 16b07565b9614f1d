"""Stage 2: train NIFT candidates and SFT baselines with TRL's SFTTrainer (LoRA by default)."""

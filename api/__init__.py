"""clipq's HTTP API. Never imports torch, transformers or torchvision."""

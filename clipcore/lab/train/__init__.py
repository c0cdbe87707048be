"""Training commands for clipq's embedded models: ``python -m clipcore.lab.train clip|detector``."""

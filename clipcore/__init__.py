"""clipq's ML core: model loading, encoders, classification, scenes, retrieval, training.

Importing this package is cheap: nothing here imports torch at module level
unless the module is about models, and no model is loaded at import time.
"""

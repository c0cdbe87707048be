"""clipq's research toolchain, apart from the service core: the generated worlds the embedded
models learn from (:mod:`.world`, and :mod:`.world_alt` and :mod:`.world_third`, independent
renderers for held-out checks; :mod:`.nuisance`, the nuisances of images from elsewhere), their
training (:mod:`.train`) and evaluation studies (:mod:`.evaluate`, :mod:`.retrieval_eval`,
:mod:`.robustness`). It loads and embeds through the core (:mod:`clipcore.clip_model`,
:mod:`clipcore.encode`); no service module imports it, and the API's image does not need it.
"""

"""What the API, the workers and clients agree on: pydantic models only.

:mod:`clipq.contracts.jobs` holds jobs (kinds, statuses, payloads, typed results);
:mod:`clipq.contracts.collections` the collections, search and evaluation schemas;
:mod:`clipq.contracts.models` the models the workers serve.
"""

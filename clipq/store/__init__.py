"""Redis, the record of everything: jobs (:mod:`.jobs`, their status changes as Lua scripts in
``lua/``), collections (:mod:`.collections`) and the job events that wake long polls
(:mod:`.events`). The API uses the asyncio halves, workers the synchronous ones."""

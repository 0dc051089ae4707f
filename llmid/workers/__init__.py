"""Scale-out: Celery workers per stage (issue 7). Thin tasks, engine in, store out; the run's state lives in the
store, so any worker can continue where another stopped.

- `chunks`: cut raw input into chunks at record boundaries (ingest side), parse them exactly as a whole file;
- `stages`: structure / reason / plan (+ kick) as plain functions, sequenced through compare-and-set cursors;
- `runstate`, `runs`: what a run keeps in the store, and its life on the ingesting side;
- `app`, `tasks`: the Celery app (queues llmid.structure, llmid.reason, llmid.plan) and its thin tasks;
- `client`: `llmid ingest --broker` with backpressure and recovery; `local`: the stages without a broker;
- `deadletter`, `cli`: `llmid failures`, `llmid worker`.

Only `app`, `tasks` and `client` import Celery, and only when a worker starts or a run is sent.
"""

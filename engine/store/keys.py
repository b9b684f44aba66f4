"""Every Redis key Switchyard uses: its type, owner and lifetime, in one place.

Key layout 2 (``docs/cluster-layout.md``): every key of a run, and every index and
queue the apply step writes, carries its **inbox partition's hash tag** ``{p<i>.<n>}``
(``tag_of``, ``slots.partition_tag``; written ``{p…}`` below), so that one apply call,
atomic, touches one Redis Cluster slot, and the partitions' slots spread evenly over
the masters. Indexes that span runs are one key per partition; readers merge them
(lists by ``createdAt``, the pruner by ``completedAt``). Keys written outside the
apply step (workflows, entities, answers) carry their own owner's tag.

| key | type | owner (writer) | lifetime |
|---|---|---|---|
| ``sy:wf:{<workflow>}`` | hash: ``version`` (latest), ``deleted``, ``createdAt``, ``updatedAt`` | bridge | forever |
| ``sy:wf:{<workflow>}:v:<n>`` | string: the definition JSON of version n (immutable) | bridge | forever |
| ``sy:wfs`` | sorted set: workflow ids by creation time | bridge | forever |
| ``sy:run:{p…}:<run>`` | hash: ``state`` (RunState JSON), ``offset`` (last applied inbox offset), ``partition`` (the inbox partition that offset is of) | engine | until pruned: ``run_retention_days`` after the run finished (``engine/retention.py``, ``store/prune.py``; 0 keeps it forever) |
| ``sy:inbox:strays:{p…}:<topic>`` | hash: ``offset`` (last record of that inbox partition, the tag's, that named no run of it: a stray moved to its run's partition, or an unreadable record dead-lettered), ``partition`` | engine | forever (one per inbox partition) |
| ``sy:run:{p…}:<run>:outbox`` | hash: step → Kafka messages still to publish for that step (tagged by the partition the step was applied in: a stray's move is applied in the stray's; ``<run>`` is ``unreadable`` for the dead letters of records that name no run) | engine | until published (a leftover is pruned with its run) |
| ``sy:run:{p…}:<run>:logs`` | list: the run's log lines, each packed (``log_record.py``: ``[nodeRunId, logLevel, log, createdAt(, tags)]``; an older release's ``{"n": <node run id>, …}`` is read alike), appended, never rewritten | engine | as the run (pruned with it) |
| ``sy:outbox:pending:{p…}`` | set: run ids whose outbox in that partition is not empty (crash recovery) | engine | while not empty (a pruned run leaves it) |
| ``sy:nr:{p…}:<2 chars>`` | hash: node run id → its run id (PATCH by node-run id; the reader probes every partition's bucket, the node-run id does not name its run's partition), bucketed by the id's first two characters so each bucket stays a compact listpack | engine | as the runs (a pruned run's node runs leave it) |
| ``sy:runs:all:{p…}`` | sorted set: run ids by ``createdAt`` (ms) | engine | as the runs (a pruned run leaves every one) |
| ``sy:runs:wf:{p…}:<workflow>`` | sorted set: that workflow's runs by ``createdAt`` | engine | as the runs (a pruned run leaves every one) |
| ``sy:runs:version:{p…}:<n>`` | sorted set: runs (of any workflow) pinned to version n | engine | as the runs (a pruned run leaves every one) |
| ``sy:ext:{p…}:<external run id>`` | string: the node run a worker gave that ``externalRunId`` | engine | as the run (pruned with it while it still names that node run) |
| ``sy:runs:by:{p…}:<creator>`` | sorted set: a creator's runs by ``createdAt`` | engine | as the runs (a pruned run leaves every one) |
| ``sy:runs:status:{p…}:<status>`` | sorted set: runs in IN_PROGRESS/CANCELLING/COMPLETED | engine | as the runs (a pruned run leaves every one) |
| ``sy:runs:result:{p…}:<result>`` | sorted set: completed runs by result | engine | as the runs (a pruned run leaves every one) |
| ``sy:runs:entity:{p…}:<blueprint>/<entity>`` | sorted set: the runs associated with that entity (an ``EVENT_TRIGGER``'s entity, a self-service trigger's entity-format inputs) by ``createdAt``, written in the apply step of the run's creation | engine | as the runs (a pruned run leaves it) |
| ``sy:runs:finished:{p…}`` | sorted set: COMPLETED runs by ``completedAt`` (ms), ZADDed in the apply step that completes the run (runs completed before it existed are added by the pruner's backfill): what the retention pruner reads | engine; pruner backfills and removes | as the runs (a pruned run leaves it) |
| ``sy:retention:backfill`` | string: the ``createdAt`` score (ms) up to which the pruner has walked ``sy:runs:status:COMPLETED`` adding runs missing from ``sy:runs:finished`` | retention pruner | forever (one key) |
| ``sy:run:{p…}:<run>:events`` | list: the run's events in ``seq`` order (index ``seq - 1``), each packed (``event_record.py``: the RunEvent's values as a JSON array, no names, no run id; the bridge gives back the run-events topic's exact JSON; a whole JSON object, an older release's, is read as it is), RPUSHed in the apply step that emits them (the per-run SSE reads it; a list because a stream key costs ~4.7 kB however small) | engine | as the run while it is unfinished; ``RUN_EVENTS_TTL_SECONDS`` (60 s) after ``run.completed`` (EXPIRE in that step): a client resuming later gets ``event: end`` and reads the run with GET (a pruned run's list is deleted if still there) |
| ``sy:runs:events:{p…}`` | stream: every run event of the partition's runs, one entry per apply step of a run (auto ids: the list SSE's cursor, with the event's index in the entry), fields ``r`` (run id) and ``e`` (a JSON array of the step's events, each packed as in the run's list; an older release's entry: one event's whole JSON), XADDed in the same apply step; each bridge's run waker blocks on them (one XREAD over all on one node, one per partition on a cluster) and wakes its live streams | engine | capped at about ``runs_events_cap(partitions)`` entries, the partition's share of ``RUNS_EVENTS_MAXLEN`` (30,000 in all: 2,500 each of 12; ``MAXLEN ~``; ~100,000 events, 3 entries a chain run): the list stream's resume window |
| ``sy:claims:{p…}:<installation>`` | sorted set: pending node runs by visible-at (ms) (a claim takes from each partition's in turn) | engine adds/removes; bridge claims | until done (a leftover of a pruned run is removed with it) |
| ``sy:claimants:{p…}`` | set: the installations that ever had a pending claim in the partition (SADDed with each pending claim; stores from before it are found by one SCAN per bridge process): what ``switchyard_claims_pending`` reads, instead of a SCAN of the keyspace at every scrape | engine adds; the bridge's first scrape backfills | forever (one member per installation) |
| ``sy:claim:{p…}:<node run>`` | hash: ``run``, ``installation``, ``config`` (JSON), ``acked``, ``uid`` (its nodeUid, once claimed), ``view`` (optional JSON: the node run as a claim item shows it, ``claims.node_run_view``; without it a claim reads the run's state) | engine; bridge sets ``acked`` and ``uid`` | until done (a leftover of a pruned run is deleted with it) |
| ``sy:org`` | hash: ``settings`` (JSON object, e.g. ``portAgentStreamerName``), ``featureFlags`` (JSON list): the organization Port's clients read and set | bridge (``PATCH /v1/organization``); engine reads | forever |
| ``sy:notify`` | pub/sub channel: run ids as the engine creates them | engine | — |
| ``sy:stats:node-runs-in-flight:{p…}`` | hash: node type → the partition's node runs of that type IN_PROGRESS (``/metrics`` sums the partitions), HINCRBY in the apply step that starts or ends one (``store/transitions.py``); read by the engine's ``/metrics`` (``switchyard_node_runs_in_flight``). Counts from the release that added it: node runs in flight before then are not in it | engine | forever |
| ``sy:timers:{p…}`` | sorted set: the partition's armed timer ids by due time (ms) (the timer service takes due ones from every partition) | engine arms/disarms in the apply step; timer service removes fired ones (only at an unchanged score) | until fired or cancelled |
| ``sy:timers:details:{p…}`` | hash: timer id → JSON ``{runId, nodeRunId, purpose, dueAt}`` (what its ``TimerFired`` carries) | as ``sy:timers:{p…}`` (written and removed together) | as the timer |
| ``sy:timers:wake`` | pub/sub channel: the due time (ms) of each timer the apply step arms, so the timer service wakes before its capped sleep ends | engine | — |
| ``sy:schedule:{<workflow>}:<node>`` | hash: ``tick`` (the last tick fired, ISO UTC), ``version`` and ``cron`` it was fired for | scheduler (compare-and-set on ``tick`` after the firing is acknowledged) | forever (one per schedule trigger) |
| ``sy:bp:{<blueprint>}`` | string: the blueprint's JSON (``POST /v1/blueprints``) | bridge | forever |
| ``sy:bps`` | sorted set: blueprint ids by creation time (ms) | bridge | forever |
| ``sy:ent:{<blueprint>}:<entity>`` | string: the entity's JSON, exactly as the API returns it (the compare-and-set token of ``write_entity.lua``) | entity store (bridge, entity executor) | until deleted |
| ``sy:ents:{<blueprint>}`` | sorted set: the blueprint's entity ids by creation time (ms), for listing | entity store | as the entities |
| ``sy:ent:outbox:{<blueprint>}`` | hash: entity event id → event JSON, written with the change, removed once Kafka acked it (per blueprint: one slot with its entities, so ``write_entity.lua`` touches one hash slot) | entity store; the relay publishes leftovers, walking ``sy:bps`` | until published |
| ``sy:ent:outbox:at:{<blueprint>}`` | sorted set: those event ids by written-at (ms): the relay takes the ones older than a few seconds | as ``sy:ent:outbox:{<blueprint>}`` (written and removed together) | until published |
| ``sy:ent:outbox``, ``sy:ent:outbox:at`` | the global outbox of releases before issue 17 (cross-slot with the entities): no longer written; the relay still publishes and forgets what an older release left there | relay | until empty |
| ``sy:meta`` | hash: ``state_format`` (the newest run-state format in this store), ``key_layout`` (the layout of these keys), ``partitions`` (the inbox partition count the run keys are tagged by): an engine refuses a store newer than it, in another layout, or tagged for another partition count (``store/upgrade.py``) | engine at start-up; ``switchyard state upgrade`` | forever (one key) |
| ``sy:ent:nr:{<blueprint>}:<node run>`` | string: JSON ``{eventId, entity}`` of an ``UPSERT_ENTITY`` node run's write (``eventId`` null when nothing changed): a redelivered request returns it and writes nothing | entity executor (``write_entity.lua``) | 7 days TTL |
| ``sy:ent:nr:<node run>`` | the same marker as an older release wrote it (no blueprint tag): read before a node run's write, never written | — | 7 days TTL, or until its run is pruned |
| ``sy:auth:fail:client:<sha256 of the client id, 32 hex>`` | string: an integer, failed (and in-flight) ``POST /v1/auth/access_token`` attempts for that client id in the window (``bridge/auth_limits.py``, which names the key) | bridge | ``auth_failure_window_seconds`` TTL from the window's first attempt |
| ``sy:auth:fail:addr:<address>`` | string: the same count for one caller address, whatever client ids it tries | bridge | as ``sy:auth:fail:client:…`` |
| ``sy:repl:probe`` / ``sy:repl:probe:{<tag>}`` | integer: INCRed right before a ``WAIT`` (``store/replication.py``), so the WAIT's connection has a write at least as late as the batch it confirms; one per Redis Cluster node the engine wrote to, tagged like a key on that node | engine, only with ``redis_wait_replicas`` > 0 | forever (a few keys) |
"""

from __future__ import annotations

from switchyard.engine.store.slots import partition_tag
from switchyard.topics.partitioning import partition_of

PREFIX = "sy:"
# The formats of the data in this Redis (store/upgrade.py): checked at engine start.
META = f"{PREFIX}meta"
RETENTION_BACKFILL = f"{PREFIX}retention:backfill"
WORKFLOWS = f"{PREFIX}wfs"
NOTIFY_CHANNEL = f"{PREFIX}notify"
# The timer service's wake-up channel (pub/sub: no slot).
TIMERS_WAKE = f"{PREFIX}timers:wake"
# Operators' figures whose truth must outlive a process (every engine adds to them).
# The organization's settings and feature flags (bridge writes, engine reads).
ORG = f"{PREFIX}org"
# The entity store (bridge and entity executor): blueprints, entities, their events.
BLUEPRINTS = f"{PREFIX}bps"
# The global outbox of older releases: the relay empties it, nothing writes it.
LEGACY_ENTITY_OUTBOX = f"{PREFIX}ent:outbox"
LEGACY_ENTITY_OUTBOX_AT = f"{PREFIX}ent:outbox:at"
REPLICATION_PROBE = f"{PREFIX}repl:probe"
# Every run event of every run (the list SSE), an entry per step, in the partitions'
# streams together; capped, so their memory is bounded: ~100,000 events (a step emits
# ~3.3 on average in a chain run), ~12 MB. Each partition's stream keeps its share
# (runs_events_cap): runs spread evenly, so the resume window stays as long in time.
RUNS_EVENTS_MAXLEN = 30_000


def runs_events_cap(partitions: int) -> int:
    """Each partition's stream's cap: its share of ``RUNS_EVENTS_MAXLEN``."""
    return max(100, RUNS_EVENTS_MAXLEN // partitions)


# How long a completed run's own event list outlives its run.completed event: long
# enough for a dropped watcher to reconnect and resume (the UI backs off to 10 s between
# tries, the CLI to about a second), short because every completed run pays it: ~1.2 kB
# for a chain run, so 60 s of completions at 450 runs/s hold ~32 MB (300 s held 160 MB).
RUN_EVENTS_TTL_SECONDS = 60


def blueprint(identifier: str) -> str:
    return f"{PREFIX}bp:{{{identifier}}}"


def entity(blueprint_identifier: str, identifier: str) -> str:
    return f"{PREFIX}ent:{{{blueprint_identifier}}}:{identifier}"


def entities_of(blueprint_identifier: str) -> str:
    return f"{PREFIX}ents:{{{blueprint_identifier}}}"


def entity_outbox(blueprint_identifier: str) -> str:
    """The blueprint's entity events not yet acknowledged by Kafka (one slot with it)."""
    return f"{PREFIX}ent:outbox:{{{blueprint_identifier}}}"


def entity_outbox_at(blueprint_identifier: str) -> str:
    return f"{PREFIX}ent:outbox:at:{{{blueprint_identifier}}}"


def entity_node_run_of(blueprint_identifier: str, node_run_id: str) -> str:
    """What an UPSERT_ENTITY node run wrote: its redelivery returns this."""
    return f"{PREFIX}ent:nr:{{{blueprint_identifier}}}:{node_run_id}"


def entity_node_run(node_run_id: str) -> str:
    """The marker as releases before issue 17 named it (read, never written)."""
    return f"{PREFIX}ent:nr:{node_run_id}"


def replication_probe(tag: str | None) -> str:
    """The key a WAIT's probe write goes to, in the slot of hash tag ``tag``."""
    return REPLICATION_PROBE if tag is None else f"{REPLICATION_PROBE}:{{{tag}}}"


def workflow(identifier: str) -> str:
    return f"{PREFIX}wf:{{{identifier}}}"


def workflow_version(identifier: str, version: int) -> str:
    return f"{PREFIX}wf:{{{identifier}}}:v:{version}"


def schedule(workflow_identifier: str, node_identifier: str) -> str:
    """The scheduler's record of one SCHEDULE_TRIGGER node: the last tick it fired."""
    return f"{PREFIX}schedule:{{{workflow_identifier}}}:{node_identifier}"


def tag_of(run_id: str, partitions: int) -> str:
    """The hash tag of ``run_id``'s keys: its inbox partition's (``slots.py``)."""
    return partition_tag(partition_of(run_id, partitions), partitions)


def run(run_id: str, tag: str) -> str:
    return f"{PREFIX}run:{tag}:{run_id}"


def strays(topic: str, tag: str) -> str:
    """The guard of moves out of one inbox partition (``tag``'s): a stray is moved once."""
    return f"{PREFIX}inbox:strays:{tag}:{topic}"


def outbox(run_id: str, tag: str) -> str:
    """What a step of ``run_id`` applied in ``tag``'s partition still has to publish
    (a stray's move is applied in the stray's partition, not its run's)."""
    return f"{PREFIX}run:{tag}:{run_id}:outbox"


def outbox_pending(tag: str) -> str:
    return f"{PREFIX}outbox:pending:{tag}"


def logs(run_id: str, tag: str) -> str:
    return f"{PREFIX}run:{tag}:{run_id}:logs"


def run_events(run_id: str, tag: str) -> str:
    """The run's events, a list in seq order: the per-run SSE's history and feed."""
    return f"{PREFIX}run:{tag}:{run_id}:events"


def node_runs_bucket(node_run_id: str, tag: str) -> str:
    """The hash holding ``node_run_id`` → run id (one key per node run cost ~100 B each),
    bucketed by the id's first two characters within the run's partition."""
    return f"{PREFIX}nr:{tag}:{node_run_id[5:7]}"


def runs_all(tag: str) -> str:
    return f"{PREFIX}runs:all:{tag}"


def runs_finished(tag: str) -> str:
    """Finished runs by completedAt: what the retention pruner takes, oldest first."""
    return f"{PREFIX}runs:finished:{tag}"


def runs_events(tag: str) -> str:
    """The partition's run events, one entry per step: the list SSE's feed."""
    return f"{PREFIX}runs:events:{tag}"


def timers(tag: str) -> str:
    return f"{PREFIX}timers:{tag}"


def timer_details(tag: str) -> str:
    return f"{PREFIX}timers:details:{tag}"


def node_runs_in_flight(tag: str) -> str:
    return f"{PREFIX}stats:node-runs-in-flight:{tag}"


def runs_of_workflow(identifier: str, tag: str) -> str:
    return f"{PREFIX}runs:wf:{tag}:{identifier}"


def runs_of_version(version: int, tag: str) -> str:
    return f"{PREFIX}runs:version:{tag}:{version}"


def external_run(external_run_id: str, tag: str) -> str:
    return f"{PREFIX}ext:{tag}:{external_run_id}"


def runs_by(creator: str, tag: str) -> str:
    return f"{PREFIX}runs:by:{tag}:{creator}"


def runs_with_status(status: str, tag: str) -> str:
    return f"{PREFIX}runs:status:{tag}:{status}"


def runs_with_result(result: str, tag: str) -> str:
    return f"{PREFIX}runs:result:{tag}:{result}"


def runs_of_entity(blueprint_identifier: str, entity_identifier: str, tag: str) -> str:
    return f"{PREFIX}runs:entity:{tag}:{blueprint_identifier}/{entity_identifier}"


def claims(installation_id: str, tag: str) -> str:
    return f"{PREFIX}claims:{tag}:{installation_id}"


def claimants(tag: str) -> str:
    return f"{PREFIX}claimants:{tag}"


def claim(node_run_id: str, tag: str) -> str:
    return f"{PREFIX}claim:{tag}:{node_run_id}"


# ---------------------------------------------------------------------------
# Keys owned by the bridge (switchyard.bridge); the engine never reads them.
#
# | key | type | owner (writer) | lifetime |
# |---|---|---|---|
# | ``sy:bridge:idem:<client>:<workflow>:<key>`` | string: the run id an Idempotency-Key started (SET NX) | bridge | ``idempotency_ttl_seconds`` (the pruner can't name it: the run does not record the client; keep the TTL below the retention) |
# | ``sy:bridge:tmp:<uuid>[:<n>]`` | sorted set: scratch union/intersection of run indexes for one list query | bridge | deleted after the query; 30 s TTL |
# | ``sy:bridge:integration:<id>`` | string: an integration's JSON document (``POST/PATCH /v1/integration``) | bridge | forever |
# | ``sy:bridge:answered:<node run>`` | hash: responder → the run id, set (HSETNX) before an INPUT answer is produced, so a responder's second answer is a 409 even when both race | bridge | 30 days TTL, or until its run is pruned (the engine's state holds the answers while the run is kept) |
# | ``sy:bridge:ext:<external run id>`` | string: the node run a PATCH gave that ``externalRunId``, before the engine has applied it (read-your-writes for the lookup) | bridge | 10 min TTL |
# ---------------------------------------------------------------------------


def integration(identifier: str) -> str:
    return f"{PREFIX}bridge:integration:{identifier}"


def reported_external_run(external_run_id: str) -> str:
    return f"{PREFIX}bridge:ext:{external_run_id}"


def answered(node_run_id: str) -> str:
    return f"{PREFIX}bridge:answered:{node_run_id}"

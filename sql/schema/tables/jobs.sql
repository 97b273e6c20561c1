-- The runner's durable queue (Oban's shape and state names).
CREATE TABLE autopilot.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    queue text NOT NULL DEFAULT 'default',
    worker text NOT NULL,
    args jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'available',
    priority smallint NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 20,
    unique_key text,
    errors jsonb NOT NULL DEFAULT '[]',
    meta jsonb NOT NULL DEFAULT '{}',
    inserted_at timestamptz NOT NULL DEFAULT now(),
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    attempted_by text,
    heartbeat_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    discarded_at timestamptz,
    depends_on bigint[],
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_state_check CHECK (
        state IN (
            'available', 'scheduled', 'executing', 'retryable', 'waiting',
            'completed', 'discarded', 'cancelled'
        )
    ),
    CONSTRAINT jobs_waiting_check CHECK (state <> 'waiting' OR cardinality(depends_on) > 0),
    CONSTRAINT jobs_priority_check CHECK (priority BETWEEN 0 AND 9),
    CONSTRAINT jobs_attempts_check CHECK (attempt >= 0 AND max_attempts > 0),
    CONSTRAINT jobs_queue_check CHECK (queue <> '' AND worker <> ''),
    CONSTRAINT jobs_errors_check CHECK (jsonb_typeof(errors) = 'array')
);

-- one unfinished job per unique key: a runner down for a day finds one pending backup
CREATE UNIQUE INDEX jobs_unique_key_idx ON autopilot.jobs (unique_key)
WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
-- claiming: by queue, priority, then age
CREATE INDEX jobs_claim_idx ON autopilot.jobs (queue, priority, scheduled_at, id)
WHERE state IN ('available', 'scheduled', 'retryable');
-- autopilot.health: per queue, the oldest job that is due and how many are (an index-only scan)
CREATE INDEX jobs_due_idx ON autopilot.jobs (queue, scheduled_at)
WHERE state IN ('available', 'scheduled', 'retryable');
-- rescue-orphaned-jobs: executing jobs by their last heartbeat
CREATE INDEX jobs_executing_idx ON autopilot.jobs (heartbeat_at)
WHERE state = 'executing';
-- a completion finds the jobs waiting for it (few: the index holds waiting jobs only)
CREATE INDEX jobs_waiting_idx ON autopilot.jobs USING gin (depends_on)
WHERE state = 'waiting';
-- old-job-cleanup walks finished jobs in id order
CREATE INDEX jobs_finished_idx ON autopilot.jobs (id)
WHERE state IN ('completed', 'discarded', 'cancelled');
-- metrics-refresh: completed and discarded jobs by the time they finished
CREATE INDEX jobs_outcome_at_idx ON autopilot.jobs ((coalesce(completed_at, discarded_at)))
WHERE state IN ('completed', 'discarded');

COMMENT ON TABLE autopilot.jobs IS
'The runner''s job queue: jobs that need code, files or a shell (pg_dump, git, embeddings), enqueued by pg_cron from the catalog and drained by the autopilot runner.';
COMMENT ON COLUMN autopilot.jobs.state IS
'available, scheduled, executing, retryable, completed, discarded, cancelled (Oban''s states), and waiting: for the jobs of depends_on to complete.';
COMMENT ON COLUMN autopilot.jobs.depends_on IS
'The jobs this one waits for: it is waiting until all of them have completed, then available (or scheduled, when its scheduled_at is later). A dependency discarded or cancelled holds it; retrying that dependency releases it once it completes.';
COMMENT ON COLUMN autopilot.jobs.unique_key IS
'Deduplicates against unfinished jobs through jobs_unique_key_idx: a second enqueue with the same key while one is unfinished inserts nothing.';
COMMENT ON COLUMN autopilot.jobs.errors IS 'The error of each failed attempt, oldest first: [{"attempt", "at", "error", "node"}] (node: the runner that ran it).';
COMMENT ON COLUMN autopilot.jobs.priority IS '0 (runs first) to 9: claim() takes due jobs by priority, then by scheduled_at.';
COMMENT ON COLUMN autopilot.jobs.attempt IS
'How many times the job has been claimed; never goes back down, so (id, attempt) names one attempt. snooze() and release() raise max_attempts instead, so that those claims are not used up.';
COMMENT ON COLUMN autopilot.jobs.attempted_by IS 'The node name of the runner that claimed the job last (hostname:pid by default).';
COMMENT ON COLUMN autopilot.jobs.heartbeat_at IS
'The last heartbeat of the runner executing the job; rescue-orphaned-jobs takes back a job without one for jobs.rescue_after.';

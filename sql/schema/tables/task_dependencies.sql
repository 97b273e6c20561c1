CREATE TABLE autopilot.task_dependencies (
    task_id bigint NOT NULL,
    depends_on_task_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT task_dependencies_pkey PRIMARY KEY (task_id, depends_on_task_id),
    -- a deleted task neither waits nor is waited for
    CONSTRAINT task_dependencies_task_id_fkey FOREIGN KEY (task_id)
    REFERENCES autopilot.tasks (id) ON DELETE CASCADE,
    CONSTRAINT task_dependencies_depends_on_task_id_fkey FOREIGN KEY (depends_on_task_id)
    REFERENCES autopilot.tasks (id) ON DELETE CASCADE,
    CONSTRAINT task_dependencies_self_check CHECK (task_id <> depends_on_task_id)
);

-- deleting a task: its dependents' rows are found through this index
CREATE INDEX task_dependencies_depends_on_task_id_idx ON autopilot.task_dependencies (depends_on_task_id);

COMMENT ON TABLE autopilot.task_dependencies IS
'Tasks that wait for others: task-assignment gives out a pending task only once every task it depends on has succeeded (planning-seed writes them from the plan''s depends_on).';
COMMENT ON COLUMN autopilot.task_dependencies.depends_on_task_id IS
'The task that must reach status succeeded first; while it is pending, assigned, running, failed or cancelled, task_id stays pending (counted as blocked).';

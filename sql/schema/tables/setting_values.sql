CREATE TABLE autopilot.setting_values (
    name text NOT NULL,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT current_user,
    CONSTRAINT setting_values_pkey PRIMARY KEY (name),
    CONSTRAINT setting_values_name_fkey FOREIGN KEY (name)
    REFERENCES autopilot.settings (name) ON DELETE CASCADE
);

COMMENT ON TABLE autopilot.setting_values IS
'Values a DBA has set, overriding autopilot.settings.default_value. Written only through autopilot.set_setting(), which validates them.';

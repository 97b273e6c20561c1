-- Typed, validated settings: the definitions and defaults belong to the extension;
-- what a DBA changes lives in autopilot.setting_values, so that it survives
-- pg_dump/restore and upgrades.
CREATE TABLE autopilot.settings (
    name text NOT NULL,
    value_type text NOT NULL,
    default_value text NOT NULL,
    min_value text,
    max_value text,
    description text NOT NULL,
    allowed_values text[],
    CONSTRAINT settings_pkey PRIMARY KEY (name),
    CONSTRAINT settings_name_format_check CHECK (name ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    CONSTRAINT settings_value_type_check CHECK (
        value_type IN ('integer', 'numeric', 'interval', 'boolean', 'text', 'path')
    )
);

COMMENT ON TABLE autopilot.settings IS
'Definitions of every autopilot setting: type, default and allowed range. Read a value with autopilot.get_setting(), change it with autopilot.set_setting().';
COMMENT ON COLUMN autopilot.settings.value_type IS
'One of integer, numeric, interval, boolean, text, path (an absolute path without ..); autopilot.set_setting() casts and range-checks against it.';
COMMENT ON COLUMN autopilot.settings.allowed_values IS
'The only values autopilot.set_setting() accepts (case-sensitive); NULL for any value of the type.';
COMMENT ON COLUMN autopilot.settings.min_value IS 'Smallest allowed value (inclusive), in the setting''s type; NULL for no bound.';
COMMENT ON COLUMN autopilot.settings.max_value IS 'Largest allowed value (inclusive), in the setting''s type; NULL for no bound.';

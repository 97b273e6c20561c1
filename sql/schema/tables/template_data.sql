CREATE TABLE autopilot.template_data (
    name text NOT NULL,
    file_path text NOT NULL,
    format text NOT NULL,
    content jsonb NOT NULL,
    content_hash text NOT NULL,
    status text NOT NULL DEFAULT 'loaded',
    loaded_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    CONSTRAINT template_data_pkey PRIMARY KEY (name),
    CONSTRAINT template_data_format_check CHECK (format IN ('json', 'yaml')),
    CONSTRAINT template_data_status_check CHECK (status IN ('loaded', 'removed')),
    CONSTRAINT template_data_removed_check CHECK ((status = 'removed') = (removed_at IS NOT NULL)),
    CONSTRAINT template_data_content_check CHECK (jsonb_typeof(content) = 'object')
);

COMMENT ON TABLE autopilot.template_data IS
'The documents of the templates_data directory (templates_data.directory), one row per file, kept in step by templates-data-load: a JSON object or YAML mapping each, as the file holds it. A file deleted from the directory stays, marked removed.';
COMMENT ON COLUMN autopilot.template_data.name IS
'The file''s path relative to the directory, without its extension (frameworks/phoenix for frameworks/phoenix.yaml): two files that differ only by extension are one name, and neither is loaded.';
COMMENT ON COLUMN autopilot.template_data.file_path IS 'The file''s path relative to the directory, with its extension.';
COMMENT ON COLUMN autopilot.template_data.content_hash IS
'sha256 of the file''s bytes when loaded: an unchanged file is not parsed again.';
COMMENT ON COLUMN autopilot.template_data.status IS
'loaded (the file is there, content as loaded last), removed (the file is gone since removed_at; the content is its last).';
COMMENT ON COLUMN autopilot.template_data.loaded_at IS 'When this content was loaded (the file last changed before then).';

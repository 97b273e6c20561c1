CREATE TABLE autopilot.code_symbols (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    file_path text NOT NULL,
    role text NOT NULL,
    name text NOT NULL,
    kind text,
    line integer NOT NULL,
    occurrences integer NOT NULL DEFAULT 1,
    CONSTRAINT code_symbols_pkey PRIMARY KEY (id),
    CONSTRAINT code_symbols_file_fkey FOREIGN KEY (codebase, file_path)
    REFERENCES autopilot.code_files (codebase, file_path) ON DELETE CASCADE,
    CONSTRAINT code_symbols_role_check CHECK (role IN ('definition', 'reference', 'import')),
    CONSTRAINT code_symbols_line_check CHECK (line >= 1),
    CONSTRAINT code_symbols_occurrences_check CHECK (occurrences >= 1)
);

-- per file: replaced in the file's transaction (and the foreign key's cascade)
CREATE INDEX code_symbols_file_idx ON autopilot.code_symbols (codebase, file_path);
-- graph-populate: resolving references and imports to definitions by name
CREATE INDEX code_symbols_name_idx ON autopilot.code_symbols (codebase, role, name);

COMMENT ON TABLE autopilot.code_symbols IS
'Definitions, references and imports found in each ingested file (tree-sitter tags queries), the input of graph-populate.';
COMMENT ON COLUMN autopilot.code_symbols.name IS
'definition: the qualified name (Class.method); reference: the name used; import: the module imported.';
COMMENT ON COLUMN autopilot.code_symbols.line IS
'The line of the symbol; for a reference, its first use in the file.';
COMMENT ON COLUMN autopilot.code_symbols.occurrences IS
'How many times the file uses the name (one row per file, name and kind of reference); 1 for definitions and imports. graph-populate weights calls by it.';

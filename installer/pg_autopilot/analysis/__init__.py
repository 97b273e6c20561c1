"""registry-sync's analysis of codebases: the analyzers (:mod:`.analyzers`: ruff, tree-sitter
complexity and pattern queries in :mod:`.treesitter`, and any a worker module registers) and one
codebase's run, recorded as a snapshot whose changes feed pattern learning (:mod:`.sync`)."""

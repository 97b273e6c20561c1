/*
 * autopilot._code_tokens: code text as words for full-text search, compiled.
 *
 * code_chunks.search_vector is to_tsvector('simple', _code_tokens(content)),
 * computed for every chunk code-ingest writes. The SQL definition is three
 * regexp_replace passes, the biggest part of the server's work in an ingest
 * (0.7 s of 1.5 s for 13,000 standard-library chunks); this does the same
 * three passes over ASCII text in plain loops. Text with any other byte goes
 * through the very same three regexp_replace calls, so letters outside ASCII
 * follow the database's locale exactly as before: the result is the SQL
 * definition's, byte for byte, whatever the input (tests/sql/_code_tokens.sql).
 *
 * The passes, each over the result of the one before:
 *   1. ([[:lower:][:digit:]])([[:upper:]]) -> '\1 \2': a blank between a
 *      lowercase letter or digit and an uppercase letter (getHTTP -> get HTTP);
 *   2. ([[:upper:]]+)([[:upper:]][[:lower:]]) -> '\1 \2': a blank before the
 *      last capital of a run of capitals followed by a lowercase letter
 *      (HTTPResponse -> HTTP Response). A global, leftmost, non-overlapping
 *      search finds exactly the positions j with capitals at j-1 and j and a
 *      lowercase letter at j+1: a match ends on that lowercase letter, so no
 *      other such position lies inside it;
 *   3. [^[:alnum:]]+ -> ' ': every run of other characters (underscores,
 *      dots, operators, the blanks of 1 and 2) becomes one blank.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "utils/builtins.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"				/* VARDATA_ANY and friends moved here in 16 */
#endif

PG_FUNCTION_INFO_V1(autopilot_code_tokens);

#define IS_LOWER(c) ((c) >= 'a' && (c) <= 'z')
#define IS_UPPER(c) ((c) >= 'A' && (c) <= 'Z')
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALNUM(c) (IS_LOWER(c) || IS_UPPER(c) || IS_DIGIT(c))

/* The SQL definition's pass: regexp_replace(source, pattern, replacement, 'g'). */
static text *
regexp_pass(text *source, const char *pattern, const char *replacement, Oid collation)
{
	return DatumGetTextPP(DirectFunctionCall4Coll(textregexreplace,
												  collation,
												  PointerGetDatum(source),
												  PointerGetDatum(cstring_to_text(pattern)),
												  PointerGetDatum(cstring_to_text(replacement)),
												  PointerGetDatum(cstring_to_text("g"))));
}

Datum
autopilot_code_tokens(PG_FUNCTION_ARGS)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(input);
	int			n = VARSIZE_ANY_EXHDR(input);
	char	   *one;
	char	   *two;
	char	   *out;
	int			n1 = 0;
	int			n2 = 0;
	int			n3 = 0;

	for (int i = 0; i < n; i++)
	{
		if ((unsigned char) s[i] >= 0x80)
		{
			Oid			collation = PG_GET_COLLATION();
			text	   *t;

			if (!OidIsValid(collation))
				collation = DEFAULT_COLLATION_OID;
			t = regexp_pass(input, "([[:lower:][:digit:]])([[:upper:]])", "\\1 \\2", collation);
			t = regexp_pass(t, "([[:upper:]]+)([[:upper:]][[:lower:]])", "\\1 \\2", collation);
			t = regexp_pass(t, "[^[:alnum:]]+", " ", collation);
			PG_RETURN_TEXT_P(t);
		}
	}

	/* each of passes 1 and 2 at most doubles the length */
	one = palloc(2 * (Size) n + 1);
	for (int i = 0; i < n; i++)
	{
		one[n1++] = s[i];
		if (i + 1 < n && (IS_LOWER(s[i]) || IS_DIGIT(s[i])) && IS_UPPER(s[i + 1]))
			one[n1++] = ' ';
	}

	two = palloc(2 * (Size) n1 + 1);
	for (int j = 0; j < n1; j++)
	{
		if (j >= 1 && j + 1 < n1 && IS_UPPER(one[j - 1]) && IS_UPPER(one[j]) && IS_LOWER(one[j + 1]))
			two[n2++] = ' ';
		two[n2++] = one[j];
	}
	pfree(one);

	out = palloc(n2 + 1);
	for (int k = 0; k < n2; k++)
	{
		if (IS_ALNUM(two[k]))
			out[n3++] = two[k];
		else if (k == 0 || IS_ALNUM(two[k - 1]))
			out[n3++] = ' ';	/* the first of a run: one blank for all of it */
	}
	pfree(two);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, n3));
}

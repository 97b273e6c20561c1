/*
 * autopilot._inner_product: the dot product of two real[] vectors, compiled.
 *
 * search_code ranks every current chunk of a codebase by the inner product of
 * its (unit-length) embedding with the query's, keeping the top k: over
 * 100,000 chunks of 384 dimensions that is 38 million multiply-adds, which SQL
 * (unnest and sum) does in seconds and this loop in well under 100 ms.
 * Embeddings are stored normalized, so the inner product is their cosine.
 * autopilot.search_code falls back to the same sum in SQL where this library
 * cannot be loaded (schema mode, or an install by a non-superuser).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

PG_FUNCTION_INFO_V1(autopilot_inner_product);

/* The elements of a one-dimensional real[] without NULLs. */
static const float4 *
real_elements(ArrayType *array, int *count)
{
	if (ARR_ELEMTYPE(array) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("an embedding must be a real[]")));
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("an embedding must be a one-dimensional array")));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("an embedding must not contain NULL")));
	*count = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	return (const float4 *) ARR_DATA_PTR(array);
}

Datum
autopilot_inner_product(PG_FUNCTION_ARGS)
{
	ArrayType  *left = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *right = PG_GETARG_ARRAYTYPE_P(1);
	int			left_count;
	int			right_count;
	const float4 *a = real_elements(left, &left_count);
	const float4 *b = real_elements(right, &right_count);
	double		sum = 0.0;

	if (left_count != right_count)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("embeddings of different dimensions: %d and %d", left_count, right_count),
				 errhint("Vectors of two embedding models are never compared: re-embed with one model.")));
	for (int i = 0; i < left_count; i++)
		sum += (double) a[i] * (double) b[i];
	PG_RETURN_FLOAT8(sum);
}

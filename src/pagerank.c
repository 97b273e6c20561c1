/*
 * autopilot._pagerank_kernel: the power iteration of PageRank, compiled.
 *
 * recalculate_all_pagerank() reads a codebase's graph set-based into arrays,
 * calls this once, and writes the scores back set-based. The iteration itself
 * is ~140 sparse matrix-vector products for L1 < 1e-10 at damping 0.85; in SQL
 * each one costs a join and an aggregate over every edge (0.2-0.5 s per
 * million edges), here a few milliseconds. autopilot._pagerank_sql() is the
 * same computation in SQL for servers where this library cannot be loaded.
 *
 * Semantics are networkx.pagerank's: start uniform, edge weights normalised
 * per source, the rank of dangling nodes (no out-weight) spread uniformly,
 * uniform teleport; except that it stops when the absolute L1 change of one
 * iteration falls below the tolerance (networkx compares with N * tol).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(autopilot_pagerank_kernel);

/* A one-dimensional array of a fixed-width type without NULLs, as a C array. */
static void *
plain_array(ArrayType *array, Oid element_type, const char *name, int *count)
{
	if (ARR_ELEMTYPE(array) != element_type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s has the wrong element type", name)));
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", name)));
	*count = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	return ARR_DATA_PTR(array);
}

/* Position of id in the ascending ids[0..n), or -1. */
static int
find_node(const int64 *ids, int n, int64 id)
{
	int			low = 0;
	int			high = n - 1;

	while (low <= high)
	{
		int			mid = low + (high - low) / 2;

		if (ids[mid] < id)
			low = mid + 1;
		else if (ids[mid] > id)
			high = mid - 1;
		else
			return mid;
	}
	return -1;
}

static void *
alloc_huge(Size size)
{
	return MemoryContextAllocHuge(CurrentMemoryContext, size == 0 ? 1 : size);
}

/*
 * _pagerank_kernel(node_ids bigint[], sources bigint[], targets bigint[],
 *                  weights float8[], damping float8, tolerance float8,
 *                  max_iterations int,
 *                  OUT ranks float8[], OUT iterations int, OUT delta float8,
 *                  OUT ignored_edges bigint)
 *
 * node_ids ascending and unique; ranks[i] is node_ids[i]'s. Edges with an end
 * outside node_ids are not part of this graph: skipped and counted. When the
 * tolerance is not reached within max_iterations the last iterate is returned
 * with delta >= tolerance; the caller decides (recalculate_all_pagerank raises).
 */
Datum
autopilot_pagerank_kernel(PG_FUNCTION_ARGS)
{
	ArrayType  *node_array;
	ArrayType  *source_array;
	ArrayType  *target_array;
	ArrayType  *weight_array;
	double		damping;
	double		tolerance;
	int32		max_iterations;
	const int64 *node_ids;
	const int64 *sources;
	const int64 *targets;
	const double *weights;
	int			n;
	int			edge_count;
	int			count;
	int32	   *edge_source;
	int32	   *edge_target;
	double	   *edge_share;
	double	   *out_weight;
	double	   *rank;
	double	   *next;
	int			kept = 0;
	int64		ignored = 0;
	int			iterations = 0;
	double		delta = 0.0;
	Datum	   *rank_datums;
	TupleDesc	result_desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	for (int arg = 0; arg < 7; arg++)
		if (PG_ARGISNULL(arg))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("_pagerank_kernel: argument %d must not be NULL", arg + 1)));

	node_array = PG_GETARG_ARRAYTYPE_P(0);
	source_array = PG_GETARG_ARRAYTYPE_P(1);
	target_array = PG_GETARG_ARRAYTYPE_P(2);
	weight_array = PG_GETARG_ARRAYTYPE_P(3);
	damping = PG_GETARG_FLOAT8(4);
	tolerance = PG_GETARG_FLOAT8(5);
	max_iterations = PG_GETARG_INT32(6);

	if (!(damping >= 0.0 && damping < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pagerank damping must be at least 0 and less than 1, not %g", damping)));
	if (!(tolerance > 0.0 && isfinite(tolerance)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pagerank tolerance must be a positive number, not %g", tolerance)));
	if (max_iterations < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pagerank max_iterations must be at least 1, not %d", max_iterations)));

	node_ids = plain_array(node_array, INT8OID, "node_ids", &n);
	sources = plain_array(source_array, INT8OID, "sources", &edge_count);
	targets = plain_array(target_array, INT8OID, "targets", &count);
	if (count != edge_count)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sources and targets differ in length (%d and %d)", edge_count, count)));
	weights = plain_array(weight_array, FLOAT8OID, "weights", &count);
	if (count != edge_count)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sources and weights differ in length (%d and %d)", edge_count, count)));
	for (int i = 1; i < n; i++)
		if (node_ids[i] <= node_ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("node_ids must be ascending and unique"),
					 errdetail("Node %lld follows node %lld.",
							   (long long) node_ids[i], (long long) node_ids[i - 1])));

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("_pagerank_kernel must be called where a record is expected")));
	result_desc = BlessTupleDesc(result_desc);

	edge_source = alloc_huge(sizeof(int32) * (Size) edge_count);
	edge_target = alloc_huge(sizeof(int32) * (Size) edge_count);
	edge_share = alloc_huge(sizeof(double) * (Size) edge_count);
	out_weight = alloc_huge(sizeof(double) * (Size) n);
	rank = alloc_huge(sizeof(double) * (Size) n);
	next = alloc_huge(sizeof(double) * (Size) n);
	for (int i = 0; i < n; i++)
		out_weight[i] = 0.0;

	for (int e = 0; e < edge_count; e++)
	{
		int			s = find_node(node_ids, n, sources[e]);
		int			t = find_node(node_ids, n, targets[e]);

		if (!(weights[e] > 0.0 && isfinite(weights[e])))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("edge %lld -> %lld has weight %g; weights must be positive and finite",
							(long long) sources[e], (long long) targets[e], weights[e])));
		if (s < 0 || t < 0)
		{
			ignored++;
			continue;
		}
		edge_source[kept] = s;
		edge_target[kept] = t;
		edge_share[kept] = weights[e];
		out_weight[s] += weights[e];
		kept++;
		if ((e & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	/* each edge's share of its source's rank, damped once here, not per iteration */
	for (int e = 0; e < kept; e++)
		edge_share[e] = damping * edge_share[e] / out_weight[edge_source[e]];

	if (n > 0)
	{
		double		teleport = (1.0 - damping) / n;

		for (int i = 0; i < n; i++)
			rank[i] = 1.0 / n;

		while (iterations < max_iterations)
		{
			double		dangling = 0.0;
			double		base;
			double	   *swap;

			CHECK_FOR_INTERRUPTS();
			for (int i = 0; i < n; i++)
				if (out_weight[i] == 0.0)
					dangling += rank[i];
			base = teleport + damping * dangling / n;
			for (int i = 0; i < n; i++)
				next[i] = 0.0;
			for (int e = 0; e < kept; e++)
				next[edge_target[e]] += rank[edge_source[e]] * edge_share[e];
			delta = 0.0;
			for (int i = 0; i < n; i++)
			{
				next[i] += base;
				delta += fabs(next[i] - rank[i]);
			}
			swap = rank;
			rank = next;
			next = swap;
			iterations++;
			if (delta < tolerance)
				break;
		}
	}

	rank_datums = alloc_huge(sizeof(Datum) * (Size) n);
	for (int i = 0; i < n; i++)
		rank_datums[i] = Float8GetDatum(rank[i]);
	values[0] = PointerGetDatum(construct_array(rank_datums, n, FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = Int32GetDatum(iterations);
	values[2] = Float8GetDatum(delta);
	values[3] = Int64GetDatum(ignored);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(result_desc, values, nulls)));
}

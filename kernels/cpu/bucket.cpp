// Counting sort for the network build (networks/connectivity.py, fixed_indegree): a chunk's keys
// source * per + local arrive in ascending `local` (target) order; grouped by source in that order they
// are the keys sorted (equal keys are equal values). Two passes over the chunk instead of a comparison
// sort: the build's largest single cost at 1e8 synapses.
#include <stdlib.h>

// keys, sources: (n,) the keys and the source of each (0 <= source < n_sources); out: (n,). Returns 0,
// or -1 if memory ran out.
extern "C" int qsn_bucket_keys(const int* keys, const int* sources, const long long n, const int n_sources, int* out) {
    long long* start = (long long*)calloc((size_t)n_sources + 1, sizeof(long long));
    if (!start) return -1;
    for (long long i = 0; i < n; ++i) ++start[sources[i] + 1];
    for (int s = 0; s < n_sources; ++s) start[s + 1] += start[s];
    for (long long i = 0; i < n; ++i) out[start[sources[i]]++] = keys[i];
    free(start);
    return 0;
}

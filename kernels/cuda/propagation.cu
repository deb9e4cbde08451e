#include "common.cuh"
// Event-driven synaptic propagation (the "event" path of qsn.networks.projection.deliver): every
// spiking presynaptic row r of step t adds weights[r, c] into
//     ring[receptor, (t + 1 + delays[r, c]) % depth, targets[r, c]]
// for each column c of its ELL row; padding entries (target == n_post, and the whole padding row
// n_pre) are skipped. The cost follows the spikes: only the rows in `rows` are read.
//
// Rows are left-packed (qsn.networks.projection._ell_fill puts row r's synapses in columns
// 0 .. count_r - 1, padding after), so a lane stops at its first padding entry: a row costs its
// synapses, not the widest row K. This matters for projections from group views (Brunel's exc/inh
// projections have a row for every neuron of the group; non-members' rows are all padding).
//
// Layout (row-major): rows (n_spiking,) int32 — compact list of spiking rows (launcher: flatnonzero);
// targets, delays (n_pre + 1, width) int32, weights (n_pre + 1, width) float32; ring
// (receptors, depth, n_post) float32, updated in place.
//
// One warp per spiking row, lanes striding over the columns: the 32 lanes of a warp read 32
// consecutive entries of targets/weights/delays (coalesced, 128 B per array per pass), and the
// scattered adds into the ring go through atomics because two rows (or multapses in one row) can hit
// the same (slot, target). Lanes never cooperate, so no warp intrinsic is needed and idle lanes may
// leave early; on the host emulation the "threads" simply run in turn.
// Launch with at least n_spiking * 32 threads (extra threads do nothing).

#define QSN_WARP 32

QSN_KERNEL qsn_propagate(
    const int n_spiking, const int* __restrict__ rows,
    const int* __restrict__ targets, const float* __restrict__ weights, const int* __restrict__ delays,
    const int n_post, const int width, const int depth, const int receptor, const int t,
    float* __restrict__ ring)
{
    const long long threads = (long long)n_spiking * QSN_WARP;
    QSN_FOR_EACH_THREAD(i, threads) {
        if (i < threads) {  // the GPU grid is rounded up to whole blocks
            const int row = rows[i / QSN_WARP];
            const int lane = (int)(i % QSN_WARP);
            // 64-bit offsets: (n_pre + 1) * width and receptors * depth * n_post pass 2^31 at scale
            const long long base = (long long)row * width;
            float* __restrict__ dest = ring + (long long)receptor * depth * n_post;
            const int next = t % depth + 1;  // (t + 1 + d) % depth without int32 overflow for large t
            for (int c = lane; c < width; c += QSN_WARP) {
                const int target = targets[base + c];
                if (target >= n_post) break;  // padding (and so is the rest of the row): dropped, as mode="drop" in JAX
                const int slot = (next + delays[base + c]) % depth;
                qsn_atomic_add(dest + (long long)slot * n_post + target, weights[base + c]);
            }
        }
    }
}

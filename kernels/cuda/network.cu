// The whole-network kernel on CUDA: one launch advances a network a chunk of `length` steps. The per-step
// work is network.cuh (shared with the CPU kernel, kernels/cpu/network.cpp); this file is only its CUDA
// launch layer: which thread does what, and the grid-wide barriers between the phases of a step.
//
// One launch, every step of the chunk inside it: the grid is as large as the GPU holds at once (a
// cooperative launch, kernels/runner.py CupyRunner.launch_resident), and each phase strides over its
// items. A step is two phases:
//   1. neurons: one item per neuron of every group (groups in order): its arrivals and receptor decay
//      (qsn_arrivals), its neuron step (qsn_sweep, one lane), and, if it spiked, its place in the
//      group's spike list of the step (an atomic counter, step_spiked[s]), its spike count and its
//      spike/rate monitor records; then its state monitor samples. A spike source's items emit
//      (qsn_emit: a Poisson source's neuron j, or entry j of an array source's step) the same way;
//   2. delivery: for each projection in order, one item per (spiking row, lane) of its event path
//      (QSN_NET_WARP lanes stride over a row's columns: a warp reads 128 B per array per pass, and the
//      adds into the ring are atomics), or one per (delay, target) of its dense path.
//   3. STDP, where a projection is plastic (qsn_net_stdp: traces, depression, potentiation, clip).
// A barrier follows each phase: delivery reads the step's spike lists, and the next step's arrivals read
// the ring slots delivery wrote (and refill the spike lists). Ring slot t % D is read and cleared in phase
// 1 of step t, before any delivery of step t can add to it (a delay of D - 1 lands there, for step t + D).
//
// Compiled by g++ this is the host emulation the tests run (HostRunner): each phase's items run in
// turn, and a row's columns run in order (one lane per row), so every sum is added in the JAX path's
// order and spike trains are the JAX path's bit for bit. On a GPU, atomics add in the order threads get
// there: ring entries that receive three or more weights in one step, and the dense path's sums over a
// spike list filled in any order, can round differently (docs/kernels.md).
#include "network.cuh"

#ifdef __CUDACC__
// 256 threads per block, 2 blocks per SM at least: up to 128 registers a thread (at 4 blocks, 64, the
// step spilled). The grid is resident, so this also sets how many threads stride over the items.
#define QSN_NET_KERNEL extern "C" __global__ void __launch_bounds__(256, 2)
#define QSN_NET_ROW_LANES QSN_NET_WARP
// Items item, item + grid size, ...: the grid holds only the resident blocks, not one thread per item.
#define QSN_GRID_STRIDE(i, total) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(total); \
         i += (long long)gridDim.x * blockDim.x)
// Grid-wide barrier (a sense-free generation counter): the last block to arrive resets the count and
// advances the generation the others wait on. Correct only when every block of the grid is resident,
// which the cooperative launch guarantees (it refuses a larger grid). barrier: two zeroed words.
__device__ __forceinline__ void qsn_grid_sync(unsigned* barrier) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned* generation = barrier + 1;
        const unsigned seen = *generation;
        __threadfence();  // this block's writes before its arrival
        if (atomicAdd(barrier, 1u) == gridDim.x - 1) {
            atomicExch(barrier, 0u);
            __threadfence();
            atomicAdd(barrier + 1, 1u);
        } else {
            while (*generation == seen) {
            }
        }
        __threadfence();  // the other blocks' writes before this block goes on
    }
    __syncthreads();
}
#else
#define QSN_NET_KERNEL QSN_KERNEL
#define QSN_NET_ROW_LANES 1  // the emulation: a row's columns in order, the JAX path's scatter order
#define QSN_GRID_STRIDE(i, total) for (long long i = 0; i < (long long)(total); ++i)
static inline void qsn_grid_sync(unsigned*) {}  // each phase's loop has run every item already
#endif

// Item `item` of phase 1 as (group, neuron): groups are laid end to end in their order.
QSN_NET_FN int qsn_net_locate(const qsn_net_group* groups, long long& item) {
    int gi = 0;
    while (item >= groups[gi].n) item -= groups[gi++].n;
    return gi;
}

// Phase 1 for neuron j of group gi at step s of the call (absolute step t0 + s).
QSN_NET_FN void qsn_net_neuron(qsn_net_group& g, const int gi, const int j, const int t0, const int s,
                               const bool renorm, const int n_monitors, qsn_net_monitor* monitors) {
    const unsigned t = (unsigned)(t0 + s);
    const qsn_consts c = qsn_load_consts(qsn_net_params(g, t0), j, true);
    float input;
    qsn_arrivals(g, t, (int)(t % (unsigned)g.depth), j, 1, 0u, &input);
    int spikes = 0;  // neuron.cuh's spike counter (the group's counts come from the spike list)
    qsn_soa_neuron state = qsn_from(qsn_net_state(g, &spikes), j);
    state.spikes = &spikes;
    unsigned char fired = 0;
    const qsn_soa_consts none = {};  // the sweep reads `c` (UNIFORM), not per-neuron arrays
    if (renorm) qsn_sweep<true, true>(j, 1, state, c, none, &input, &fired, s);
    else qsn_sweep<true, false>(j, 1, state, c, none, &input, &fired, s);
    if (fired) {
        g.spiked[qsn_net_count(g.step_spiked + s, 1)] = j;
        g.count[j] += 1;
    }
    for (int mi = 0; mi < n_monitors; ++mi) {
        qsn_net_monitor& m = monitors[mi];
        if (m.group != gi) continue;
        if (m.kind != QSN_MON_STATE) {
            if (fired) qsn_net_record_spike(m, s, j);
            continue;
        }
        const int lo = m.start ? m.start[j] : j, hi = m.start ? m.start[j + 1] : j + 1;
        for (int k = lo; k < hi; ++k) qsn_net_sample(m, g, s, m.start ? m.where[k] : k, j);
    }
}

// Phase 1 for item j of spike source g (group gi) at step s: the neuron it makes spike, if any, into the
// step's spike list, its count and its spike/rate monitor records.
QSN_NET_FN void qsn_net_source(qsn_net_group& g, const int gi, const int j, const int t0, const int s,
                               const int n_monitors, qsn_net_monitor* monitors) {
    unsigned kt0 = 0u, kt1 = 0u;
    if (g.source == QSN_POISSON_SOURCE) qsn_step_key(g.key0, g.key1, (unsigned)(t0 + s), kt0, kt1);
    const int i = qsn_emit(g, kt0, kt1, s, j);
    if (i < 0) return;
    g.spiked[qsn_net_count(g.step_spiked + s, 1)] = i;
    qsn_net_count(g.count + i, 1);
    for (int mi = 0; mi < n_monitors; ++mi)
        if (monitors[mi].group == gi && monitors[mi].kind != QSN_MON_STATE) qsn_net_record_spike(monitors[mi], s, i);
}

// Phase 3 of step s, STDP (network.cuh's passes (a)-(d), a barrier between each and the next): every plastic
// projection's traces, then spikes and depression (a warp per spiking row), potentiation (a warp per
// spiking target's column), and the clip (every slot on the call's first step).
QSN_NET_FN void qsn_net_stdp(const qsn_net_group* groups, const int n_projections,
                             const qsn_net_projection* projections, const int s, unsigned* barrier) {
    for (int pi = 0; pi < n_projections; ++pi) {  // (a)
        const qsn_net_projection& p = projections[pi];
        if (!p.plastic) continue;
        QSN_GRID_STRIDE(item, (long long)p.n_pre + p.n_post) {
            if (item < p.n_pre) qsn_stdp_decay_pre(p, (int)item);
            else qsn_stdp_decay_post(p, (int)(item - p.n_pre));
        }
    }
    qsn_grid_sync(barrier);
    for (int pi = 0; pi < n_projections; ++pi) {  // (b)
        const qsn_net_projection& p = projections[pi];
        if (!p.plastic) continue;
        const qsn_net_group &pre = groups[p.pre], &post = groups[p.post];
        const long long rows = (long long)pre.step_spiked[s] * QSN_NET_ROW_LANES;
        QSN_GRID_STRIDE(item, rows + post.step_spiked[s]) {
            if (item < rows) {
                const int row = qsn_net_row(p, pre.spiked[item / QSN_NET_ROW_LANES]);
                const int lane = (int)(item % QSN_NET_ROW_LANES);
                if (row < 0) continue;
                if (lane == 0) qsn_stdp_spike_pre(p, row);
                qsn_stdp_depress(p, row, lane, QSN_NET_ROW_LANES);
            } else {
                qsn_stdp_spike_post(p, post.spiked[item - rows]);
            }
        }
    }
    qsn_grid_sync(barrier);
    for (int pi = 0; pi < n_projections; ++pi) {  // (c)
        const qsn_net_projection& p = projections[pi];
        if (!p.plastic) continue;
        const qsn_net_group& post = groups[p.post];
        QSN_GRID_STRIDE(item, (long long)post.step_spiked[s] * QSN_NET_ROW_LANES) {
            qsn_stdp_potentiate(p, post.spiked[item / QSN_NET_ROW_LANES], (int)(item % QSN_NET_ROW_LANES),
                                QSN_NET_ROW_LANES);
        }
    }
    qsn_grid_sync(barrier);
    for (int pi = 0; pi < n_projections; ++pi) {  // (d)
        const qsn_net_projection& p = projections[pi];
        if (!p.plastic || p.multiplicative) continue;
        const qsn_net_group &pre = groups[p.pre], &post = groups[p.post];
        if (s == 0) {
            QSN_GRID_STRIDE(item, (long long)(p.n_pre + 1) * p.width) qsn_stdp_clip(p, item);
            continue;
        }
        const long long rows = (long long)pre.step_spiked[s] * QSN_NET_ROW_LANES;
        QSN_GRID_STRIDE(item, rows + (long long)post.step_spiked[s] * QSN_NET_ROW_LANES) {
            const bool along_row = item < rows;
            const long long at = along_row ? item : item - rows;
            const int lane = (int)(at % QSN_NET_ROW_LANES), k = (int)(at / QSN_NET_ROW_LANES);
            const int row = along_row ? qsn_net_row(p, pre.spiked[k]) : -1;
            if (!along_row) qsn_stdp_clip_col(p, post.spiked[k], lane, QSN_NET_ROW_LANES);
            else if (row >= 0) qsn_stdp_clip_row(p, row, lane, QSN_NET_ROW_LANES);
        }
    }
}

// Advance the network `length` steps from absolute step t0 (groups, projections and monitors in device
// memory, as kernels/network.py lays them out; total: the neurons of all groups; barrier: two zeroed
// words). step_spiked of every group is (length,) zeros; monitor records are zeroed by the launcher.
QSN_NET_KERNEL qsn_network(const int n_groups, qsn_net_group* groups, const int n_projections,
                       const qsn_net_projection* projections, const int n_monitors, qsn_net_monitor* monitors,
                       const long long total, const int t0, const int length, unsigned* barrier) {
    (void)n_groups;
    bool plastic = false;
    for (int pi = 0; pi < n_projections; ++pi) plastic |= projections[pi].plastic != 0;
    for (int s = 0; s < length; ++s) {
        const bool renorm = QSN_RENORM_AT(t0 + s);
        QSN_GRID_STRIDE(item, total) {  // 1
            long long j = item;
            const int gi = qsn_net_locate(groups, j);
            if (groups[gi].source == QSN_NEURONS) qsn_net_neuron(groups[gi], gi, (int)j, t0, s, renorm, n_monitors, monitors);
            else qsn_net_source(groups[gi], gi, (int)j, t0, s, n_monitors, monitors);
        }
        qsn_grid_sync(barrier);
        for (int pi = 0; pi < n_projections; ++pi) {  // 2
            const qsn_net_projection& p = projections[pi];
            const qsn_net_group& pre = groups[p.pre];
            const qsn_net_group& post = groups[p.post];
            const int n_spiked = pre.step_spiked[s];
            const int slot = (int)((unsigned)(t0 + s) % (unsigned)post.depth);
            if (!p.dense) {
                QSN_GRID_STRIDE(item, (long long)n_spiked * QSN_NET_ROW_LANES) {
                    const int lane = (int)(item % QSN_NET_ROW_LANES);
                    qsn_net_deliver_row(p, post, slot, pre.spiked[item / QSN_NET_ROW_LANES], lane, QSN_NET_ROW_LANES);
                }
            } else if (n_spiked > 0) {
                QSN_GRID_STRIDE(item, (long long)p.n_delays * p.n_post) {
                    qsn_net_deliver_dense(p, post, slot, (int)(item / p.n_post), (int)(item % p.n_post), 1,
                                          pre.spiked, n_spiked);
                }
            }
        }
        qsn_grid_sync(barrier);
        if (plastic) qsn_net_stdp(groups, n_projections, projections, s, barrier);
    }
    QSN_GRID_STRIDE(item, total) {
        long long j = item;
        const int gi = qsn_net_locate(groups, j);
        if (groups[gi].source == QSN_NEURONS) qsn_net_finish(groups[gi], (int)j, length);
    }
}

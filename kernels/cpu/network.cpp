// The whole-network kernel on the CPU: one call advances a network a chunk of `length` steps. The per-step
// work is kernels/cuda/network.cuh (shared with the CUDA kernel, kernels/cuda/network.cu); this file is
// only its CPU launch layer: the order of the phases, the blocks, the spike lists and the per-call setup.
//
// Single-threaded on purpose: a step of CUBA (4000 neurons, ~80 synapses per spike, ~2 spikes per
// step) is a few microseconds, shorter than an OpenMP barrier per phase would cost.
//
// The layout of a step: each group is swept in blocks of QSN_NET_LANES neurons. A block's arrivals
// (qsn_arrivals) write its input current into a stack array, the block's neuron step (qsn_sweep,
// vectorised across the block as kernels/cpu/population.cpp's; its loads and stores come from neuron.cuh's
// field lists QSN_NEURON, QSN_CONSTS) writes a byte per lane, and a scalar pass, skipped when no lane
// fired, appends the block's spiking neurons to the group's spike list (ascending). Propagation, the
// spike counts and the monitors read only the spike lists: no per-step pass over all neurons outside the
// sweep. An i_const or a receptor's psc that is one value for the whole group is read as one (checked per
// call); an event projection whose synapses share one delay adds into one ring row per step, others
// carry delay x n_post offsets, so that a synapse's slot is an add and a conditional subtract.
#include "network.cuh"
#include <stdlib.h>
#include <string.h>

namespace {

struct qsn_group_run {
    qsn_soa_neuron state;
    qsn_consts shared;
    qsn_soa_consts consts;
    bool uniform;
    int slot;  // t % D of the current step
    unsigned shared_in;  // qsn_arrivals' `shared` bits
};

// Whether the n values of a are one value (then the arrivals read a[0] as a loop invariant).
bool qsn_is_uniform(const float* a, const int n) {
    for (int i = 1; i < n; ++i)
        if (a[i] != a[0]) return false;
    return true;
}

// Append the lanes of `fired` (m bytes, 0 or 1) that spiked, as neuron indices first + i, to `list`;
// returns the new length. Eight lanes at a time: most words of a block are zero.
int qsn_compact(const unsigned char* __restrict__ fired, const int m, const int first, int* __restrict__ list,
                int count) {
    int i = 0;
    for (; i + 8 <= m; i += 8) {
        qsn_u64 word;
        memcpy(&word, fired + i, 8);
        while (word) {
            const int bit = __builtin_ctzll(word);
            list[count++] = first + i + (bit >> 3);
            word &= word - 1;
        }
    }
    for (; i < m; ++i)
        if (fired[i]) list[count++] = first + i;
    return count;
}

// 2. One step of a block: the sweep for its renormalisation step or not, and for its angles
// (qsn_block_small: the series form only, no sine, when every lane's angle is small).
template <bool UNIFORM>
void qsn_block_step(const long long first, const int m, const qsn_soa_neuron& block, const qsn_consts& shared,
                    const qsn_soa_consts& consts, const float* input, unsigned char* fired, const int s,
                    const bool renorm) {
    const bool small = qsn_block_small<UNIFORM>(m, block, shared, consts, input, s);
    if (small) {
        if (renorm) qsn_sweep<UNIFORM, true, true>(first, m, block, shared, consts, input, fired, s);
        else qsn_sweep<UNIFORM, false, true>(first, m, block, shared, consts, input, fired, s);
    } else {
        if (renorm) qsn_sweep<UNIFORM, true>(first, m, block, shared, consts, input, fired, s);
        else qsn_sweep<UNIFORM, false>(first, m, block, shared, consts, input, fired, s);
    }
}

// 4 (before propagation). A spike source's spike list at step s (absolute step t), ascending, and its counts.
void qsn_source_step(qsn_net_group& g, const unsigned t, const int s) {
    unsigned kt0 = 0u, kt1 = 0u;
    int n_spiked = 0;
    if (g.source == QSN_POISSON_SOURCE) {
        qsn_step_key(g.key0, g.key1, t, kt0, kt1);
        unsigned char fired[QSN_NET_LANES];
        for (int first = 0; first < g.n; first += QSN_NET_LANES) {  // the draws vectorised, then compacted
            const int m = g.n - first < QSN_NET_LANES ? g.n - first : QSN_NET_LANES;
            for (int i = 0; i < m; ++i) fired[i] = qsn_emit(g, kt0, kt1, s, first + i) >= 0;
            n_spiked = qsn_compact(fired, m, first, g.spiked, n_spiked);
        }
    } else {
        for (int j = 0, i; (i = qsn_emit(g, kt0, kt1, s, j)) >= 0; ++j) g.spiked[n_spiked++] = i;
    }
    g.n_spiked = n_spiked;
    for (int e = 0; e < n_spiked; ++e) ++g.count[g.spiked[e]];
}

// 4. the spikes of group `pre` at step t (its spike list, ascending) through projection p, row by row.
void qsn_propagate(const qsn_net_projection& p, const qsn_net_group& pre, const qsn_net_group& post, const int slot) {
    const int n_spiked = pre.n_spiked;
    if (n_spiked == 0) return;
    if (!p.dense) {
        for (int k = 0; k < n_spiked; ++k) qsn_net_deliver_row(p, post, slot, pre.spiked[k], 0, 1);
        return;
    }
    for (int d = 0; d < p.n_delays; ++d)
        for (int q = 0; q < p.n_post; q += QSN_NET_LANES) {
            const int m = p.n_post - q < QSN_NET_LANES ? p.n_post - q : QSN_NET_LANES;
            qsn_net_deliver_dense(p, post, slot, d, q, m, pre.spiked, n_spiked);
        }
}

// 5. STDP on projection p after the step's propagation (network.cuh's passes in order; `first`: the first
// step of the call, whose clip covers every slot).
void qsn_stdp(const qsn_net_projection& p, const qsn_net_group& pre, const qsn_net_group& post, const bool first) {
    for (int i = 0; i < p.n_pre; ++i) qsn_stdp_decay_pre(p, i);  // (a)
    for (int j = 0; j < p.n_post; ++j) qsn_stdp_decay_post(p, j);
    for (int k = 0; k < pre.n_spiked; ++k) {  // (b)
        const int row = qsn_net_row(p, pre.spiked[k]);
        if (row < 0) continue;
        qsn_stdp_spike_pre(p, row);
        qsn_stdp_depress(p, row, 0, 1);
    }
    for (int k = 0; k < post.n_spiked; ++k) qsn_stdp_spike_post(p, post.spiked[k]);
    for (int k = 0; k < post.n_spiked; ++k) qsn_stdp_potentiate(p, post.spiked[k], 0, 1);  // (c)
    if (p.multiplicative) return;  // (d)
    if (first) {
        for (long long slot = 0; slot < (long long)(p.n_pre + 1) * p.width; ++slot) qsn_stdp_clip(p, slot);
        return;
    }
    for (int k = 0, row; k < pre.n_spiked; ++k)
        if ((row = qsn_net_row(p, pre.spiked[k])) >= 0) qsn_stdp_clip_row(p, row, 0, 1);
    for (int k = 0; k < post.n_spiked; ++k) qsn_stdp_clip_col(p, post.spiked[k], 0, 1);
}

// 6. one monitor's record of step s from its group's spike list (SpikeMonitor, RateMonitor) or state.
void qsn_record(qsn_net_monitor& m, const qsn_net_group& g, const int s) {
    if (m.kind == QSN_MON_STATE) {
        for (int at = 0; at < m.k; ++at) qsn_net_sample(m, g, s, at, m.index ? m.index[at] : at);
        return;
    }
    const long long first = m.n_events;
    for (int e = 0; e < g.n_spiked; ++e) qsn_net_record_spike(m, s, g.spiked[e]);
    if (m.kind == QSN_MON_SPIKES && !m.sorted && m.n_events <= m.cap) {  // positions ascending within the step
        for (long long a = first + 1; a < m.n_events; ++a) {           // (insertion sort)
            const int at = m.ev_pos[a];
            long long b = a;
            for (; b > first && m.ev_pos[b - 1] > at; --b) m.ev_pos[b] = m.ev_pos[b - 1];
            m.ev_pos[b] = at;
        }
    }
}

}  // namespace

// Advance the network `length` steps from absolute step t0. Returns 0, or -1 if memory ran out.
extern "C" int qsn_network(const int n_groups, qsn_net_group* groups, const int n_projections,
                           const qsn_net_projection* projections, const int n_monitors,
                           qsn_net_monitor* monitors, const int t0, const int length) {
    const int param_mask = (1 << QSN_BIT_CURRENT) - 1;
    qsn_group_run* runs = (qsn_group_run*)calloc(n_groups > 0 ? n_groups : 1, sizeof(qsn_group_run));
    if (!runs) return -1;
    int status = 0;
    for (int mi = 0; mi < n_monitors; ++mi) monitors[mi].n_events = 0;
    // a block's input current and spike bytes; its lanes' spike counters (neuron.cuh's `spikes`, counted
    // in L1 and dropped: a neuron's spikes are counted from the spike lists, without a pass over all neurons)
    float input[QSN_NET_LANES];
    unsigned char fired[QSN_NET_LANES];
    int lane_spikes[QSN_NET_LANES];
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        qsn_group_run& run = runs[gi];
        g.n_spiked = 0;
        run.uniform = true;
        if (g.source != QSN_NEURONS) continue;  // (a source has no neuron state)
        const qsn_params p = qsn_net_params(g, t0);
        run.uniform = (g.per_neuron & param_mask) == 0 && !(g.per_neuron >> QSN_BIT_DEPHASE_STD);
        run.shared = qsn_load_consts(p, 0, true);
        run.slot = t0 % g.depth;
        run.shared_in = qsn_is_uniform(g.i_const, g.n) ? 1u << 31 : 0u;
        for (int r = 0; r < g.receptors && r < 31; ++r)
            run.shared_in |= qsn_is_uniform(g.psc + (long long)r * g.n, g.n) ? 1u << r : 0u;
        run.state = qsn_net_state(g, lane_spikes);  // (each block's sweep is pointed at lane_spikes)
        if (!run.uniform) {
#define QSN_ALLOC(type, name) run.consts.name = (type*)malloc(sizeof(type) * (g.n > 0 ? g.n : 1)); \
            if (!run.consts.name) status = -1;
            QSN_CONSTS(QSN_ALLOC)
#undef QSN_ALLOC
            if (status) break;
            for (long long i = 0; i < g.n; ++i) {
                const qsn_consts from = qsn_load_consts(p, i, true);
                qsn_soa_consts& to = run.consts;
                QSN_CONSTS(QSN_PUT)
            }
        }
    }
    for (int s = 0; status == 0 && s < length; ++s) {
        const bool renorm = QSN_RENORM_AT(t0 + s);
        memset(lane_spikes, 0, sizeof(lane_spikes));
        for (int gi = 0; gi < n_groups; ++gi) {  // 1-3, block by block (the sources: their spikes)
            qsn_net_group& g = groups[gi];
            const qsn_group_run& run = runs[gi];
            if (g.source != QSN_NEURONS) {
                qsn_source_step(g, (unsigned)(t0 + s), s);
                continue;
            }
            int n_spiked = 0;
            for (int first = 0; first < g.n; first += QSN_NET_LANES) {
                const int m = g.n - first < QSN_NET_LANES ? g.n - first : QSN_NET_LANES;
                qsn_soa_neuron block = qsn_from(run.state, first);
                block.spikes = lane_spikes;
                const qsn_soa_consts consts = run.uniform ? run.consts : qsn_from(run.consts, first);
                qsn_arrivals(g, (unsigned)(t0 + s), run.slot, first, m, run.shared_in, input);
                if (run.uniform) qsn_block_step<true>(first, m, block, run.shared, consts, input, fired, s, renorm);
                else qsn_block_step<false>(first, m, block, run.shared, consts, input, fired, s, renorm);
                n_spiked = qsn_compact(fired, m, first, g.spiked, n_spiked);
            }
            g.n_spiked = n_spiked;
            for (int e = 0; e < n_spiked; ++e) ++g.count[g.spiked[e]];
        }
        for (int pi = 0; pi < n_projections; ++pi) {  // 4
            const qsn_net_projection& p = projections[pi];
            qsn_propagate(p, groups[p.pre], groups[p.post], runs[p.post].slot);
        }
        for (int pi = 0; pi < n_projections; ++pi)  // 5
            if (projections[pi].plastic)
                qsn_stdp(projections[pi], groups[projections[pi].pre], groups[projections[pi].post], s == 0);
        for (int mi = 0; mi < n_monitors; ++mi) qsn_record(monitors[mi], groups[monitors[mi].group], s);  // 6
        for (int gi = 0; gi < n_groups; ++gi) runs[gi].slot = runs[gi].slot + 1 == groups[gi].depth ? 0 : runs[gi].slot + 1;
    }
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        if (status == 0 && g.source == QSN_NEURONS)
            for (int i = 0; i < g.n; ++i) qsn_net_finish(g, i, length);
        if (!runs[gi].uniform) {
#define QSN_FREE(type, name) free(runs[gi].consts.name);
            QSN_CONSTS(QSN_FREE)
#undef QSN_FREE
        }
    }
    free(runs);
    return status;
}

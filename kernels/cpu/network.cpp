// The whole-network kernel on the CPU: one call advances a network a chunk of `length` steps, in the
// per-step schedule of qsn/networks/network.py (its module docstring; docs/networks.md):
//   1. arrivals: each receptor adds its ring slot t % D (and clears it); Delta receptors add to V;
//   2. the neuron step, qsn_step of kernels/cuda/neuron.cuh (the one text every launch layer runs),
//      with the current i_const + psc * x summed over the PscExp receptors in receptor order;
//   3. receptor decay x *= decay;
//   4. propagation: the spikes of step t go, through each event-path (ELL) projection in the network's
//      order, rows ascending, columns ascending, into ring[receptor, (t + 1 + delay) % D, target];
//      dense-path projections add their (n_post,) sum of spiking rows, one per distinct delay;
//   6. monitors: spikes (step, k) bytes and population counts (step,) of the state after the step.
// (5, plasticity, and Poisson inputs, spike sources, time-varying currents, state monitors and
// conductance receptors are refused by kernels/network.py before a call: they run on the JAX path.)
//
// Single-threaded on purpose: a step of CUBA (4000 neurons, ~80 synapses per spike, ~2 spikes per
// step) is a few microseconds, shorter than an OpenMP barrier per phase would cost. Each group's neuron
// step is one sweep over its structure of arrays (the state arrays themselves) that g++ vectorises,
// as kernels/cpu/population.cpp's does; the sweep's loads and stores come from neuron.cuh's field
// lists (QSN_NEURON, QSN_CONSTS).
//
// Bit-for-bit agreement with the JAX path (tests/kernels/test_native_network.py): the membrane is
// neuron.cuh's two FMAs (XLA's contraction); the PscExp current contracts as XLA's CPU backend does,
// i_const + psc * x -> fmaf(psc, x, i_const) per receptor (QSN_NET_PSC_FMA); ring additions follow
// the event path's scatter order.
#include "neuron.cuh"
#include <stdlib.h>
#include <string.h>

#ifndef QSN_NET_PSC_FMA
#define QSN_NET_PSC_FMA 1
#endif

enum qsn_kinetics { QSN_DELTA = 0, QSN_PSC_EXP = 1 };

// One neuron group; kernels/network.py mirrors this struct field by field (ctypes).
struct qsn_net_group {
    int n, receptors, depth, per_neuron;
    float dt;
    unsigned key0, key1;
    int pad_;
    // parameters: one value or (n,), as bit qsn_param_bit of per_neuron says (neuron.cuh)
    const float *v_rest, *v_th, *v_reset, *decay, *gain, *inv_range;
    const int* n_ref;
    const float *delta, *g1, *g2, *dephase_std, *relax_keep, *jump_prob, *jump_keep;
    const int* kinds;      // (R,) qsn_kinetics
    const float* decays;   // (R,) exp(-dt/tau) (Delta: 0)
    const float* i_const;  // (n,) constant current, r_m I in mV
    const float* psc;      // (R, n) PscExp equivalent-current factors (0 for other receptors)
    // state, updated in place: V, refractory steps left, the qubit (re0 im0 re1 im1; q3 unused in
    // mixed mode), receptor variables, ring buffers, spike counts
    float* v;
    int* ref;
    float *q0, *q1, *q2, *q3;
    float* syn;    // (R, n)
    float* ring;   // (R, D, n)
    int* count;    // (n,)
    // scratch (n,) each
    float* input;
    int* spikes;
    unsigned char* fired;
};

struct qsn_net_projection {
    int pre, post, receptor, n_pre, n_post, width, dense, n_delays;
    const int* targets;    // event: (n_pre + 1, width) ELL targets, padding == n_post, rows left-packed
    const int* delays;     // event: (n_pre + 1, width) steps; dense: (n_delays,) the distinct delays
    const float* weights;  // event: (n_pre + 1, width); dense: (n_delays, n_pre, n_post)
    float* scratch;        // dense: (n_post,)
};

struct qsn_net_monitor {
    int kind, group, k, pad_;  // kind 0: SpikeMonitor (length, k) bytes; 1: RateMonitor (length,) int32
    const int* index;          // (k,) neurons of the group, or null for all of them
    unsigned char* spikes;
    int* rate;
};

namespace {

// The state of a group as a structure of arrays named by neuron.cuh's field list.
#define QSN_SOA_PTR(type, name) type* name;
#define QSN_GET(type, name) to.name = from.name[i];
#define QSN_PUT(type, name) to.name[i] = from.name;
struct qsn_soa_neuron { QSN_NEURON(QSN_SOA_PTR) };
struct qsn_soa_consts { QSN_CONSTS(QSN_SOA_PTR) };

// One step s of every neuron of a group, vectorised across neurons (UNIFORM: shared constants).
template <bool UNIFORM, bool RENORM>
void qsn_sweep(const int n, const qsn_soa_neuron& from_state, const qsn_consts& shared,
               const qsn_soa_consts& consts, const float* __restrict__ input, unsigned char* __restrict__ fired,
               const int s) {
#pragma GCC ivdep
    for (int i = 0; i < n; ++i) {
        qsn_consts c = shared;
        if (!UNIFORM) {
            qsn_consts& to = c;
            const qsn_soa_consts& from = consts;
            QSN_CONSTS(QSN_GET)
        }
#if QSN_STOCHASTIC
        if (UNIFORM) c.neuron = (unsigned)i;
#endif
        qsn_neuron nrn;
        {
            qsn_neuron& to = nrn;
            const qsn_soa_neuron& from = from_state;
            QSN_NEURON(QSN_GET)
        }
        const bool spike = qsn_step(nrn, c, input[i], s, RENORM);
        {
            const qsn_soa_neuron& to = from_state;
            const qsn_neuron& from = nrn;
            QSN_NEURON(QSN_PUT)
        }
        fired[i] = spike;
    }
}

struct qsn_group_run {
    qsn_soa_neuron state;
    qsn_consts shared;
    qsn_soa_consts consts;
    bool uniform;
    int near_dummy_;
};

// 1-3 for group g at absolute step t: arrivals, the input current, receptor decay.
void qsn_arrivals(qsn_net_group& g, const int t) {
    const int n = g.n, D = g.depth, slot = t % D;
    float* __restrict__ input = g.input;
    float* __restrict__ v = g.v;
    memcpy(input, g.i_const, sizeof(float) * n);
    for (int r = 0; r < g.receptors; ++r) {
        float* __restrict__ ring = g.ring + ((long long)r * D + slot) * n;
        float* __restrict__ syn = g.syn + (long long)r * n;
        const float dec = g.decays[r];
        if (g.kinds[r] == QSN_DELTA) {
            for (int i = 0; i < n; ++i) {
                const float x = syn[i] + ring[i];
                ring[i] = 0.0f;
                v[i] = v[i] + x;
                syn[i] = x * dec;
            }
        } else {
            const float* __restrict__ psc = g.psc + (long long)r * n;
            for (int i = 0; i < n; ++i) {
                const float x = syn[i] + ring[i];
                ring[i] = 0.0f;
#if QSN_NET_PSC_FMA
                input[i] = fmaf(psc[i], x, input[i]);
#else
                input[i] = input[i] + psc[i] * x;
#endif
                syn[i] = x * dec;
            }
        }
    }
}

// 4. the spikes of group `pre` at step t into the ring buffer of the projection's target.
void qsn_propagate(const qsn_net_projection& p, const qsn_net_group& pre, qsn_net_group& post, const int t) {
    const int D = post.depth, n_post = p.n_post;
    float* __restrict__ base = post.ring + (long long)p.receptor * D * n_post;
    const unsigned char* __restrict__ fired = pre.fired;
    if (!p.dense) {
        const int W = p.width;
        for (int i = 0; i < p.n_pre; ++i) {
            if (!fired[i]) continue;
            const int* __restrict__ tg = p.targets + (long long)i * W;
            const int* __restrict__ dl = p.delays + (long long)i * W;
            const float* __restrict__ w = p.weights + (long long)i * W;
            for (int j = 0; j < W; ++j) {
                const int q = tg[j];
                if (q >= n_post) break;  // padding: rows are left-packed
                const int slot = (int)(((long long)t + 1 + dl[j]) % D);
                base[(long long)slot * n_post + q] += w[j];
            }
        }
        return;
    }
    for (int d = 0; d < p.n_delays; ++d) {  // the sum of the spiking rows, then into the slot
        float* __restrict__ acc = p.scratch;
        memset(acc, 0, sizeof(float) * n_post);
        bool any = false;
        for (int i = 0; i < p.n_pre; ++i) {
            if (!fired[i]) continue;
            any = true;
            const float* __restrict__ w = p.weights + ((long long)d * p.n_pre + i) * n_post;
            for (int q = 0; q < n_post; ++q) acc[q] += w[q];
        }
        if (!any) continue;
        const int slot = (int)(((long long)t + 1 + p.delays[d]) % D);
        float* __restrict__ row = base + (long long)slot * n_post;
        for (int q = 0; q < n_post; ++q) row[q] += acc[q];
    }
}

}  // namespace

// Advance the network `length` steps from absolute step t0. Returns 0, or -1 if memory ran out.
extern "C" int qsn_network(const int n_groups, qsn_net_group* groups, const int n_projections,
                           const qsn_net_projection* projections, const int n_monitors,
                           const qsn_net_monitor* monitors, const int t0, const int length) {
    const int param_mask = (1 << QSN_BIT_CURRENT) - 1;
    qsn_group_run* runs = (qsn_group_run*)calloc(n_groups > 0 ? n_groups : 1, sizeof(qsn_group_run));
    if (!runs) return -1;
    int status = 0;
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        qsn_group_run& run = runs[gi];
        const qsn_params p = {g.v_rest, g.v_th, g.v_reset, g.decay, g.gain, g.inv_range, g.n_ref, g.delta, g.g1,
                              g.g2, g.dephase_std, g.relax_keep, g.jump_prob, g.jump_keep, g.per_neuron, t0, g.dt,
                              0.0f, g.key0, g.key1};
        run.uniform = (g.per_neuron & param_mask) == 0 && !(g.per_neuron >> QSN_BIT_DEPHASE_STD);
        run.shared = qsn_load_consts(p, 0, true);
        memset(g.spikes, 0, sizeof(int) * g.n);
        // the refractory counter becomes the first free step of this chunk (neuron.cuh's free_at)
        run.state.v = g.v; run.state.free_at = g.ref;
        run.state.q0 = g.q0; run.state.q1 = g.q1; run.state.q2 = g.q2; run.state.q3 = g.q3;
        run.state.spikes = g.spikes;
#if QSN_TIES
        run.state.near = g.spikes;  // (no tie counting here: QSN_TIES is 0 in network builds)
#endif
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
        const int t = t0 + s;
        const bool renorm = QSN_RENORM_AT(t);
        for (int gi = 0; gi < n_groups; ++gi) {
            qsn_net_group& g = groups[gi];
            const qsn_group_run& run = runs[gi];
            qsn_arrivals(g, t);
            if (run.uniform) {
                if (renorm) qsn_sweep<true, true>(g.n, run.state, run.shared, run.consts, g.input, g.fired, s);
                else qsn_sweep<true, false>(g.n, run.state, run.shared, run.consts, g.input, g.fired, s);
            } else {
                if (renorm) qsn_sweep<false, true>(g.n, run.state, run.shared, run.consts, g.input, g.fired, s);
                else qsn_sweep<false, false>(g.n, run.state, run.shared, run.consts, g.input, g.fired, s);
            }
        }
        for (int pi = 0; pi < n_projections; ++pi) {
            const qsn_net_projection& p = projections[pi];
            qsn_propagate(p, groups[p.pre], groups[p.post], t);
        }
        for (int mi = 0; mi < n_monitors; ++mi) {
            const qsn_net_monitor& m = monitors[mi];
            const unsigned char* __restrict__ fired = groups[m.group].fired;
            if (m.kind == 0) {
                unsigned char* __restrict__ row = m.spikes + (long long)s * m.k;
                if (m.index) {
                    for (int k = 0; k < m.k; ++k) row[k] = fired[m.index[k]];
                } else {
                    memcpy(row, fired, m.k);
                }
            } else {
                int total = 0;
                for (int k = 0; k < m.k; ++k) total += fired[m.index ? m.index[k] : k];
                m.rate[s] = total;
            }
        }
    }
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        if (status == 0) {
            for (int i = 0; i < g.n; ++i) {
                g.ref[i] = g.ref[i] > length ? g.ref[i] - length : 0;
                g.count[i] += g.spikes[i];
            }
        }
        if (!runs[gi].uniform) {
#define QSN_FREE(type, name) free(runs[gi].consts.name);
            QSN_CONSTS(QSN_FREE)
#undef QSN_FREE
        }
    }
    free(runs);
    return status;
}

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
// Poisson inputs join step 1, drawing the JAX path's random numbers (qsn_poisson_add). (5, plasticity,
// and spike sources, time-varying currents, state monitors and conductance receptors are refused by
// kernels/network.py before a call: they run on the JAX path.)
//
// Single-threaded on purpose: a step of CUBA (4000 neurons, ~80 synapses per spike, ~2 spikes per
// step) is a few microseconds, shorter than an OpenMP barrier per phase would cost.
//
// The layout of a step: each group is swept in blocks of QSN_NET_BLOCK neurons. A block's arrivals
// write its input current into a stack array, the block's neuron step (qsn_sweep, vectorised across
// the block as kernels/cpu/population.cpp's; its loads and stores come from neuron.cuh's field lists
// QSN_NEURON, QSN_CONSTS) writes a byte per lane, and a scalar pass, skipped when no lane fired, appends
// the block's spiking neurons to the group's spike list (ascending). Propagation, the spike counts and
// the monitors read only the spike lists: no per-step pass over all neurons outside the sweep. An
// i_const or a receptor's psc that is one value for the whole group is read as one (checked per call);
// an event projection whose synapses share one delay adds into one ring row per step, others carry
// delay x n_post offsets, so that a synapse's slot is an add and a conditional subtract.
//
// Bit-for-bit agreement with the JAX path (tests/kernels/test_kernel_native_network.py): the membrane is
// neuron.cuh's two FMAs (XLA's contraction); the PscExp current contracts as XLA's CPU backend does,
// i_const + psc * x -> fmaf(psc, x, i_const) per receptor (QSN_NET_PSC_FMA); ring additions follow
// the event path's scatter order.
#include "neuron.cuh"
#include <stdlib.h>
#include <string.h>

#ifndef QSN_NET_PSC_FMA
#define QSN_NET_PSC_FMA 1
#endif
#ifndef QSN_NET_POISSON_FMA  // x + weight k as one FMA (XLA's contraction) or rounded twice
#define QSN_NET_POISSON_FMA 1
#endif
#define QSN_NET_BLOCK 256  // neurons per block of a group's sweep (their input and spike bytes: 1.25 KiB)

enum qsn_kinetics { QSN_DELTA = 0, QSN_PSC_EXP = 1 };

// One PoissonInput (networks/inputs.py) into a receptor of a group: at absolute step t, the neurons it
// targets draw k ~ Poisson(lam) as the JAX path does (poisson_counts): u = jax.random.uniform(
// fold_in(stream key, t), (targets,)) and k = #{j : u >= table[j]}; then x[receptor] += weight k.
struct qsn_net_poisson {
    int receptor, length;  // length: entries of the CDF table
    unsigned key0, key1;   // key_data(fold_in(network key, the input's stream))
    float weight;
    int pad_;
    const float* table;  // (length,) float32 CDF, as the JAX path's consts hold it
    const int* draw;     // (n,) draw index of each neuron of the group (its place in the input's view),
                         // -1 if it is not a target; null: every neuron, at its own index
};

// One neuron group; kernels/network.py mirrors this struct field by field (ctypes).
struct qsn_net_group {
    int n, receptors, depth, per_neuron;
    float dt;
    unsigned key0, key1;
    int n_spiked;  // length of `spiked` after a step (the kernel's)
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
    int* spiked;  // (n,) scratch: the spiking neurons of the current step
    int n_poisson, pad2_;
    const qsn_net_poisson* poisson;  // (n_poisson,) in the network's order
};

struct qsn_net_projection {
    int pre, post, receptor, n_pre, n_post, width, dense, n_delays;
    int delay, pad_;       // event: the one delay (steps) of every synapse, or -1 (then `delays` says)
    const int* targets;    // event: (n_pre + 1, width) ELL targets, padding == n_post, rows left-packed
    const int* delays;     // event: (n_pre + 1, width) delay x n_post, the offset of the delay's ring
                           // slot (D n_post < 2^31); dense: (n_delays,) the distinct delays (steps)
    const float* weights;  // event: (n_pre + 1, width); dense: (n_delays, n_pre, n_post)
    float* scratch;        // dense: (n_post,)
};

struct qsn_net_monitor {
    int kind, group, k;  // kind 0: SpikeMonitor (length, k) bytes; 1: RateMonitor (length,) int32
    int sorted;          // the monitor's index is non-decreasing (or absent)
    // the monitor's index inverted: neuron i of the group is at positions where[start[i] .. start[i + 1])
    // of the record; both null when the monitor takes the whole group
    const int* start;  // (n + 1,)
    const int* where;  // (k,)
    unsigned char* spikes;  // (length, k)
    int* rate;
    // SpikeMonitor: the same records as events (step, position) in row-major order, the first `cap` of
    // them; n_events counts all (more than cap: the caller reads the rows instead)
    long long cap, n_events;
    int *ev_step, *ev_pos;
};

namespace {

// The state of a group as a structure of arrays named by neuron.cuh's field list.
#define QSN_SOA_PTR(type, name) type* name;
#define QSN_GET(type, name) to.name = from.name[i];
#define QSN_PUT(type, name) to.name[i] = from.name;
#define QSN_SHIFT(type, name) to.name = from.name + first;
struct qsn_soa_neuron { QSN_NEURON(QSN_SOA_PTR) };
struct qsn_soa_consts { QSN_CONSTS(QSN_SOA_PTR) };

// The arrays of a group from neuron `first` on.
template <class SOA>
SOA qsn_from(const SOA& all, const int first);
template <>
qsn_soa_neuron qsn_from(const qsn_soa_neuron& from, const int first) {
    qsn_soa_neuron to;
    QSN_NEURON(QSN_SHIFT)
    return to;
}
template <>
qsn_soa_consts qsn_from(const qsn_soa_consts& from, const int first) {
    qsn_soa_consts to;
    QSN_CONSTS(QSN_SHIFT)
    return to;
}

// One step s of the m neurons of a block (its arrays: `state`, `consts`; the first is neuron `first`
// of the group), vectorised across them (UNIFORM: shared constants); fired[i] says whether lane i spiked.
template <bool UNIFORM, bool RENORM>
void qsn_sweep(const int first, const int m, const qsn_soa_neuron& state, const qsn_consts& shared,
               const qsn_soa_consts& consts, const float* __restrict__ input, unsigned char* __restrict__ fired,
               const int s) {
#pragma GCC ivdep
    for (int i = 0; i < m; ++i) {
        qsn_consts c = shared;
        if (!UNIFORM) {
            qsn_consts& to = c;
            const qsn_soa_consts& from = consts;
            QSN_CONSTS(QSN_GET)
        }
#if QSN_STOCHASTIC
        if (UNIFORM) c.neuron = (unsigned)(first + i);
#else
        (void)first;
#endif
        qsn_neuron nrn;
        {
            qsn_neuron& to = nrn;
            const qsn_soa_neuron& from = state;
            QSN_NEURON(QSN_GET)
        }
        const bool spike = qsn_step(nrn, c, input[i], s, RENORM);
        {
            const qsn_soa_neuron& to = state;
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
    int slot;  // t % D of the current step
    unsigned shared_in;  // qsn_arrivals' `shared` bits
};

// Whether the n values of a are one value (then the arrivals read a[0] as a loop invariant).
bool qsn_is_uniform(const float* a, const int n) {
    for (int i = 1; i < n; ++i)
        if (a[i] != a[0]) return false;
    return true;
}

// Threefry-2x32 with 20 rounds (Salmon et al., SC'11), as JAX's threefry2x32 primitive computes it.
QSN_DEVICE void qsn_threefry(const unsigned k0, const unsigned k1, unsigned& x0, unsigned& x1) {
    const unsigned ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    const int rot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
    x0 += ks[0];
    x1 += ks[1];
QSN_UNROLL
    for (int g = 0; g < 5; ++g) {
QSN_UNROLL
        for (int r = 0; r < 4; ++r) {
            const int d = rot[g & 1][r];
            x0 += x1;
            x1 = (x1 << d) | (x1 >> (32 - d));
            x1 ^= x0;
        }
        x0 += ks[(g + 1) % 3];
        x1 += ks[(g + 2) % 3] + (unsigned)(g + 1);
    }
}

// Poisson input p's counts for lanes first .. first + m - 1 at absolute step t, added to x:
// jax.random.fold_in(key, t) is threefry(key, (0, t)); word j of jax.random.uniform under it is
// threefry(key_t, (0, j)) with its two halves xor-ed (the partitionable layout), and the uniform is its
// top 23 bits times 2^-23 (exact in float32).
void qsn_poisson_add(const qsn_net_poisson& p, const unsigned t, const int first, const int m, float* __restrict__ x) {
    unsigned kt0 = 0u, kt1 = t;
    qsn_threefry(p.key0, p.key1, kt0, kt1);
    float u[QSN_NET_BLOCK];
    int k[QSN_NET_BLOCK];
    const int* __restrict__ draw = p.draw ? p.draw + first : nullptr;
    for (int i = 0; i < m; ++i) {
        unsigned x0 = 0u, x1 = draw ? (unsigned)draw[i] : (unsigned)(first + i);
        qsn_threefry(kt0, kt1, x0, x1);
        u[i] = (float)((x0 ^ x1) >> 9) * 1.1920928955078125e-7f;
        k[i] = 0;
    }
    for (int j = 0; j < p.length; ++j) {  // the count over the table, every entry (no branch)
        const float c = p.table[j];
        for (int i = 0; i < m; ++i) k[i] += u[i] >= c ? 1 : 0;
    }
    const float w = p.weight;
    if (draw) {
        for (int i = 0; i < m; ++i) {
#if QSN_NET_POISSON_FMA
            const float add = fmaf(w, (float)k[i], x[i]);
#else
            const float add = x[i] + w * (float)k[i];
#endif
            x[i] = draw[i] >= 0 ? add : x[i];
        }
    } else {
        for (int i = 0; i < m; ++i) {
#if QSN_NET_POISSON_FMA
            x[i] = fmaf(w, (float)k[i], x[i]);
#else
            x[i] = x[i] + w * (float)k[i];
#endif
        }
    }
}

// A receptor's variable at arrival, x = syn + ring slot (the slot is cleared) ...
QSN_DEVICE float qsn_take(float* __restrict__ syn, float* __restrict__ ring, const int i) {
    const float x = syn[i] + ring[i];
    ring[i] = 0.0f;
    return x;
}

// ... and what it does: V += x (Delta) or input += psc x (PscExp; SHARED: one psc for the group), then
// syn = x decay.
template <int KIND, bool SHARED>
QSN_DEVICE void qsn_give(const float x, const int i, float* __restrict__ syn, const float* __restrict__ psc,
                         const float dec, float* __restrict__ v, float* __restrict__ input) {
    if (KIND == QSN_DELTA) {
        v[i] = v[i] + x;
    } else {
        const float p = SHARED ? psc[0] : psc[i];
#if QSN_NET_PSC_FMA
        input[i] = fmaf(p, x, input[i]);
#else
        input[i] = input[i] + p * x;
#endif
    }
    syn[i] = x * dec;
}

// Receptor r's arrivals for the m lanes of a block at absolute step t, with the Poisson inputs into it.
template <int KIND, bool SHARED>
void qsn_receptor(const qsn_net_group& g, const int r, const unsigned t, const int first, const int m,
                  float* __restrict__ syn, float* __restrict__ ring, const float* __restrict__ psc, const float dec,
                  float* __restrict__ v, float* __restrict__ input) {
    bool poisson = false;
    for (int pi = 0; pi < g.n_poisson; ++pi) poisson |= g.poisson[pi].receptor == r;
    if (!poisson) {
        for (int i = 0; i < m; ++i) qsn_give<KIND, SHARED>(qsn_take(syn, ring, i), i, syn, psc, dec, v, input);
        return;
    }
    float x[QSN_NET_BLOCK];
    for (int i = 0; i < m; ++i) x[i] = qsn_take(syn, ring, i);
    for (int pi = 0; pi < g.n_poisson; ++pi)  // in the network's order, as the JAX path adds them
        if (g.poisson[pi].receptor == r) qsn_poisson_add(g.poisson[pi], t, first, m, x);
    for (int i = 0; i < m; ++i) qsn_give<KIND, SHARED>(x[i], i, syn, psc, dec, v, input);
}

// 1 and 3 for neurons first .. first + m - 1 of group g at absolute step t: arrivals from ring slot `slot`
// and the Poisson inputs into V (Delta) or the input current (PscExp), then receptor decay. `shared`:
// bit r, receptor r's psc is one value; bit 31, i_const is.
void qsn_arrivals(const qsn_net_group& g, const unsigned t, const int slot, const int first, const int m,
                  const unsigned shared, float* __restrict__ input) {
    const int n = g.n, D = g.depth;
    float* __restrict__ v = g.v + first;
    if (shared >> 31) {
        const float c = g.i_const[0];
        for (int i = 0; i < m; ++i) input[i] = c;
    } else {
        memcpy(input, g.i_const + first, sizeof(float) * m);
    }
    for (int r = 0; r < g.receptors; ++r) {
        float* __restrict__ ring = g.ring + ((long long)r * D + slot) * n + first;
        float* __restrict__ syn = g.syn + (long long)r * n + first;
        const float* __restrict__ psc = g.psc + (long long)r * n + ((shared >> r) & 1 ? 0 : first);
        const float dec = g.decays[r];
        if (g.kinds[r] == QSN_DELTA) qsn_receptor<QSN_DELTA, true>(g, r, t, first, m, syn, ring, psc, dec, v, input);
        else if ((shared >> r) & 1) qsn_receptor<QSN_PSC_EXP, true>(g, r, t, first, m, syn, ring, psc, dec, v, input);
        else qsn_receptor<QSN_PSC_EXP, false>(g, r, t, first, m, syn, ring, psc, dec, v, input);
    }
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

// 4. the spikes of group `pre` at step t (its spike list) into the ring buffer of the projection's
// target, whose step t reads slot `slot` (= t % D): delay d lands in slot (t + 1 + d) % D, which is
// (slot + 1 + d) reduced once, since d < D.
void qsn_propagate(const qsn_net_projection& p, const qsn_net_group& pre, const qsn_net_group& post, const int slot) {
    const int D = post.depth, n_post = p.n_post;
    const int next = slot + 1 == D ? 0 : slot + 1;
    float* __restrict__ base = post.ring + (long long)p.receptor * D * n_post;
    const int* __restrict__ spiked = pre.spiked;
    const int n_spiked = pre.n_spiked;
    if (n_spiked == 0) return;
    if (!p.dense) {
        const int W = p.width;
        if (p.delay >= 0) {  // one delay: one ring row for the whole step
            int at = next + p.delay;
            at -= at >= D ? D : 0;
            float* __restrict__ row = base + (long long)at * n_post;
            for (int k = 0; k < n_spiked; ++k) {
                const long long first = (long long)spiked[k] * W;
                const int* __restrict__ tg = p.targets + first;
                const float* __restrict__ w = p.weights + first;
                for (int j = 0; j < W && tg[j] < n_post; ++j) row[tg[j]] += w[j];  // padding ends a row
            }
            return;
        }
        const int span = D * n_post, start = next * n_post;
        for (int k = 0; k < n_spiked; ++k) {
            const long long first = (long long)spiked[k] * W;
            const int* __restrict__ tg = p.targets + first;
            const int* __restrict__ off = p.delays + first;
            const float* __restrict__ w = p.weights + first;
            for (int j = 0; j < W && tg[j] < n_post; ++j) {
                int at = start + off[j];
                at -= at >= span ? span : 0;
                base[at + tg[j]] += w[j];
            }
        }
        return;
    }
    float* __restrict__ acc = p.scratch;
    for (int d = 0; d < p.n_delays; ++d) {  // the sum of the spiking rows, then into the slot
        memset(acc, 0, sizeof(float) * n_post);
        for (int k = 0; k < n_spiked; ++k) {
            const float* __restrict__ w = p.weights + ((long long)d * p.n_pre + spiked[k]) * n_post;
            for (int q = 0; q < n_post; ++q) acc[q] += w[q];
        }
        int at = next + p.delays[d];
        at -= at >= D ? D : 0;
        float* __restrict__ row = base + (long long)at * n_post;
        for (int q = 0; q < n_post; ++q) row[q] += acc[q];
    }
}

// 6. one monitor's record of step s from its group's spike list: the monitored positions of each
// spiking neuron are where[start[i] .. start[i + 1]) (kernels/network.py inverts the monitor's index;
// null start: every neuron, at its own index).
void qsn_record(qsn_net_monitor& m, const qsn_net_group& g, const int s) {
    const int* __restrict__ spiked = g.spiked;
    if (m.kind != 0) {
        int total = 0;
        for (int e = 0; e < g.n_spiked; ++e) {
            const int i = spiked[e];
            total += m.start ? m.start[i + 1] - m.start[i] : 1;
        }
        m.rate[s] = total;
        return;
    }
    unsigned char* __restrict__ row = m.spikes + (long long)s * m.k;  // reused between calls
    memset(row, 0, m.k);
    const long long first = m.n_events;
    for (int e = 0; e < g.n_spiked; ++e) {
        const int i = spiked[e];
        const int lo = m.start ? m.start[i] : 0, hi = m.start ? m.start[i + 1] : 1;
        for (int j = lo; j < hi; ++j) {
            const int at = m.start ? m.where[j] : i;
            row[at] = 1;
            if (m.n_events < m.cap) {
                m.ev_step[m.n_events] = s;
                m.ev_pos[m.n_events] = at;
            }
            ++m.n_events;
        }
    }
    if (!m.sorted && m.n_events <= m.cap) {  // positions ascending within the step (insertion sort)
        for (long long a = first + 1; a < m.n_events; ++a) {
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
    float input[QSN_NET_BLOCK];
    unsigned char fired[QSN_NET_BLOCK];
    int lane_spikes[QSN_NET_BLOCK];
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        qsn_group_run& run = runs[gi];
        const qsn_params p = {g.v_rest, g.v_th, g.v_reset, g.decay, g.gain, g.inv_range, g.n_ref, g.delta, g.g1,
                              g.g2, g.dephase_std, g.relax_keep, g.jump_prob, g.jump_keep, g.per_neuron, t0, g.dt,
                              0.0f, g.key0, g.key1};
        run.uniform = (g.per_neuron & param_mask) == 0 && !(g.per_neuron >> QSN_BIT_DEPHASE_STD);
        run.shared = qsn_load_consts(p, 0, true);
        run.slot = t0 % g.depth;
        run.shared_in = qsn_is_uniform(g.i_const, g.n) ? 1u << 31 : 0u;
        for (int r = 0; r < g.receptors && r < 31; ++r)
            run.shared_in |= qsn_is_uniform(g.psc + (long long)r * g.n, g.n) ? 1u << r : 0u;
        g.n_spiked = 0;
        // the refractory counter becomes the first free step of this chunk (neuron.cuh's free_at)
        run.state.v = g.v; run.state.free_at = g.ref;
        run.state.q0 = g.q0; run.state.q1 = g.q1; run.state.q2 = g.q2; run.state.q3 = g.q3;
        run.state.spikes = lane_spikes;  // (each block's sweep is pointed at them)
#if QSN_TIES
        run.state.near = lane_spikes;  // (no tie counting here: QSN_TIES is 0 in network builds)
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
        const bool renorm = QSN_RENORM_AT(t0 + s);
        memset(lane_spikes, 0, sizeof(lane_spikes));
        for (int gi = 0; gi < n_groups; ++gi) {  // 1-3, block by block
            qsn_net_group& g = groups[gi];
            const qsn_group_run& run = runs[gi];
            int n_spiked = 0;
            for (int first = 0; first < g.n; first += QSN_NET_BLOCK) {
                const int m = g.n - first < QSN_NET_BLOCK ? g.n - first : QSN_NET_BLOCK;
                qsn_soa_neuron block = qsn_from(run.state, first);
                block.spikes = lane_spikes;
                const qsn_soa_consts consts = run.uniform ? run.consts : qsn_from(run.consts, first);
                qsn_arrivals(g, (unsigned)(t0 + s), run.slot, first, m, run.shared_in, input);
                if (run.uniform) {
                    if (renorm) qsn_sweep<true, true>(first, m, block, run.shared, consts, input, fired, s);
                    else qsn_sweep<true, false>(first, m, block, run.shared, consts, input, fired, s);
                } else {
                    if (renorm) qsn_sweep<false, true>(first, m, block, run.shared, consts, input, fired, s);
                    else qsn_sweep<false, false>(first, m, block, run.shared, consts, input, fired, s);
                }
                n_spiked = qsn_compact(fired, m, first, g.spiked, n_spiked);
            }
            g.n_spiked = n_spiked;
            for (int e = 0; e < n_spiked; ++e) ++g.count[g.spiked[e]];
        }
        for (int pi = 0; pi < n_projections; ++pi) {  // 4
            const qsn_net_projection& p = projections[pi];
            qsn_propagate(p, groups[p.pre], groups[p.post], runs[p.post].slot);
        }
        for (int mi = 0; mi < n_monitors; ++mi) qsn_record(monitors[mi], groups[monitors[mi].group], s);  // 6
        for (int gi = 0; gi < n_groups; ++gi) runs[gi].slot = runs[gi].slot + 1 == groups[gi].depth ? 0 : runs[gi].slot + 1;
    }
    for (int gi = 0; gi < n_groups; ++gi) {
        qsn_net_group& g = groups[gi];
        if (status == 0) {
            for (int i = 0; i < g.n; ++i) {
                g.ref[i] = g.ref[i] > length ? g.ref[i] - length : 0;
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

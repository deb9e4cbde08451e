// The whole-network step, device-agnostic: the per-step work of a network (arrivals from the ring
// buffers, Poisson inputs, receptor kinetics, the neuron step of neuron.cuh, receptor decay, event
// delivery, spike counts and monitors) for a range of lanes, written once for every launch layer:
//   * kernels/cpu/network.cpp, the native CPU kernel: one thread walks each group in blocks of
//     QSN_NET_LANES = 256 neurons, the loops over a block's lanes vectorised, and delivers the step's
//     spikes row by row (lane 0, stride 1);
//   * kernels/cuda/network.cu, the CUDA kernel: one thread per neuron (the same functions with one
//     lane), one warp per spiking row for delivery (lane = the thread's lane, stride 32), atomics
//     where threads meet (ring entries, spike lists, counters); compiled by g++ it is the host
//     emulation the tests run, each "thread" in turn.
// The schedule of a step (qsn/networks/network.py's module docstring; docs/networks.md):
//   1. arrivals: each receptor adds its ring slot t % D (and clears it), then the Poisson inputs into
//      it; Delta receptors add to V;
//   2. the neuron step, qsn_step of neuron.cuh, with the current i_const + psc * x summed over the
//      PscExp receptors in receptor order, or, with CondExp receptors, the equivalent current of the
//      conductances held over the step (qsn_net_cond_current);
//   3. receptor decay x *= decay;
//   4. propagation: the spikes of step t go, through each event-path (ELL) projection, into
//      ring[receptor, (t + 1 + delay) % D, target]; dense-path projections add their (n_post,) sum of
//      spiking rows, one per distinct delay;
//   6. monitors: spikes (step, k) bytes and events, population counts (step,), state samples.
// (5, plasticity, and spike sources, time-varying currents are refused by kernels/network.py before a
// call: they run on the JAX path.)
//
// Bit-for-bit agreement with the JAX path (tests/kernels/test_kernel_native_network.py): the membrane is
// neuron.cuh's two FMAs (XLA's contraction); the PscExp current contracts as XLA's CPU backend does,
// i_const + psc * x -> fmaf(psc, x, i_const) per receptor (QSN_NET_PSC_FMA); Poisson counts are the JAX
// path's own threefry draws; ring additions follow the event path's scatter order where one thread
// makes them (the CPU kernel, the host emulation). On a GPU, atomics add into a ring entry in the
// order the threads reach it, so sums of three or more weights can round differently (docs/kernels.md).
#include "neuron.cuh"

#ifndef QSN_NET_PSC_FMA
#define QSN_NET_PSC_FMA 1
#endif
#ifndef QSN_NET_POISSON_FMA  // x + weight k as one FMA (XLA's contraction) or rounded twice
#define QSN_NET_POISSON_FMA 1
#endif
// CondExp: which of the equivalent current's products XLA contracts with the sum after it (a bit each;
// tests/kernels/test_kernel_native_network.py checks the choice against the JAX path bit for bit):
//   1: g_e + x e_rev        2: (v_rest + g_e) + r_m I      4: v_inf + (V - v_inf) decay^(1 + g)
//   8: (v_new - v_rest) - (V - v_rest) decay
#ifndef QSN_NET_COND_FMA
#define QSN_NET_COND_FMA 15
#endif
#if QSN_NATIVE
#define QSN_NET_LANES 256  // neurons per block of the CPU sweep (their input and spike bytes: 1.25 KiB)
#define QSN_IVDEP _Pragma("GCC ivdep")
#else
#define QSN_NET_LANES 1  // one neuron per CUDA thread (and per emulated thread)
#define QSN_IVDEP
#endif
#ifdef __CUDACC__
#define QSN_NET_FN __device__ inline
#else
#define QSN_NET_FN static inline
#endif
#if QSN_NATIVE  // the block sweeps stay functions of their own: inlined into the step loop, g++ leaves
#define QSN_NET_SWEEP static __attribute__((noinline))  // some of them scalar ("control flow in loop")
#else
#define QSN_NET_SWEEP QSN_NET_FN
#endif
#define QSN_NET_WARP 32  // threads per spiking row on the GPU

enum qsn_kinetics { QSN_DELTA = 0, QSN_PSC_EXP = 1, QSN_COND_EXP = 2 };
enum qsn_monitor_kind { QSN_MON_SPIKES = 0, QSN_MON_RATE = 1, QSN_MON_STATE = 2 };
// What a group is: neurons that step, or a spike source that emits (networks/program.py PoissonSource,
// ArraySource: no state but its spike counts)
enum qsn_source_kind { QSN_NEURONS = 0, QSN_POISSON_SOURCE = 1, QSN_ARRAY_SOURCE = 2 };

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
    int n_spiked;  // CPU: length of `spiked` after a step (the kernel's)
    // parameters: one value or (n,), as bit qsn_param_bit of per_neuron says (neuron.cuh)
    const float *v_rest, *v_th, *v_reset, *decay, *gain, *inv_range;
    const int* n_ref;
    const float *delta, *g1, *g2, *dephase_std, *relax_keep, *jump_prob, *jump_keep;
    const int* kinds;      // (R,) qsn_kinetics
    const float* decays;   // (R,) exp(-dt/tau) (Delta: 0)
    const float* e_rev;    // (R,) reversal potentials of the CondExp receptors, mV (others: 0)
    const float* i_const;  // (n,) constant current (the neuron step's input)
    const float* psc;      // (R, n) PscExp equivalent-current factors (0 for other receptors)
    const float* r_m;      // (n,) membrane resistance (the CondExp drive is r_m I)
    // state, updated in place: V, refractory steps left (during a call: the first free step of the
    // call, neuron.cuh's free_at), the qubit (re0 im0 re1 im1), receptor variables, ring buffers,
    // spike counts
    float* v;
    int* ref;
    float *q0, *q1, *q2, *q3;
    float* syn;    // (R, n)
    float* ring;   // (R, D, n)
    int* count;    // (n,)
    int* spiked;   // (n,) scratch: the spiking neurons of the current step
    int* step_spiked;  // CUDA: (length,) spikes of each step of the call, zeroed by the launcher
    int n_poisson, source;  // source: a qsn_source_kind
    const qsn_net_poisson* poisson;  // (n_poisson,) in the network's order
    // spike sources (source != QSN_NEURONS: only n, key0/key1, count, spiked, step_spiked and these are set)
    const float* emit_p;    // Poisson source: (n,) spike probability per step, drawn from key0/key1's stream
    const int* emit_start;  // array source: (length + 1,) where each step of the call starts in emit_idx
    const int* emit_idx;    // array source: the neurons that spike, step by step, ascending within a step
};

struct qsn_net_projection {
    int pre, post, receptor, n_pre, n_post, width, dense, n_delays;
    int delay;             // event: the one delay (steps) of every synapse, or -1 (then `delays` says)
    int first;             // event: row r holds the synapses of neuron first + r of the source group
    const int* targets;    // event: (n_pre + 1, width) ELL targets, padding == n_post, rows left-packed
    const int* lengths;    // event: (n_pre + 1,) targets of each row before its padding
    const int* delays;     // event: (n_pre + 1, width) delay x n_post, the offset of the delay's ring
                           // slot (D n_post < 2^31); dense: (n_delays,) the distinct delays (steps)
    float* weights;        // event: (n_pre + 1, width); dense: (n_delays, n_pre, n_post); STDP changes them
    float* scratch;        // CPU, dense: (n_post,)
    // STDP (networks/plasticity.py), event path only: plastic != 0; traces x_pre (n_pre,) and x_post
    // (n_post,) in place, x_post_old (2 n_post,) scratch: the decayed post trace before this step's spikes
    // and the trace before its decay;
    // the synapses onto target j are flat slots col_slot[col_start[j] .. col_start[j + 1]) of the rows
    int plastic, multiplicative;
    float a_plus, a_minus, decay_plus, decay_minus, w_min, w_max;
    float *x_pre, *x_post, *x_post_old;
    const int* col_start;  // (n_post + 1,)
    const int* col_slot;   // (synapses,) row * width + column
};

struct qsn_net_monitor {
    int kind, group, k;  // qsn_monitor_kind; k: positions recorded
    int sorted;          // the monitor's index is non-decreasing (or absent)
    // the monitor's index inverted: neuron i of the group is at positions where[start[i] .. start[i + 1])
    // of the record; both null when the monitor takes the whole group
    const int* start;  // (n + 1,)
    const int* where;  // (k,)
    unsigned char* spikes;  // SpikeMonitor: (length, k), zero on entry (the launcher clears the bytes it last saw set)
    int* rate;              // RateMonitor: (length,), zeroed by the launcher
    // SpikeMonitor: the same records as events (step, position), the first `cap` of them (row-major
    // on the CPU, in any order on the GPU); n_events counts all (past cap: the caller reads the rows)
    long long cap, n_events;
    int *ev_step, *ev_pos;
    // StateMonitor: after each step, (length, k, fields) floats: V, q0..q3, then the R receptor
    // variables (after decay) of the neuron at each position (the caller derives the observables)
    float* values;
    const int* index;  // (k,) the neuron at each position; null: the position is the neuron
    int fields, pad_;
};

// The state of a group as a structure of arrays named by neuron.cuh's field list.
#define QSN_SOA_PTR(type, name) type* name;
#define QSN_GET(type, name) to.name = from.name[i];
#define QSN_PUT(type, name) to.name[i] = from.name;
#define QSN_SHIFT(type, name) to.name = from.name + first;
struct qsn_soa_neuron { QSN_NEURON(QSN_SOA_PTR) };
struct qsn_soa_consts { QSN_CONSTS(QSN_SOA_PTR) };

// The arrays of a group from neuron `first` on.
QSN_NET_FN qsn_soa_neuron qsn_from(const qsn_soa_neuron& from, const long long first) {
    qsn_soa_neuron to;
    QSN_NEURON(QSN_SHIFT)
    return to;
}
QSN_NET_FN qsn_soa_consts qsn_from(const qsn_soa_consts& from, const long long first) {
    qsn_soa_consts to;
    QSN_CONSTS(QSN_SHIFT)
    return to;
}

// The group's state arrays as neuron.cuh's fields (spikes: where the step counts a lane's spikes).
QSN_NET_FN qsn_soa_neuron qsn_net_state(const qsn_net_group& g, int* spikes) {
    qsn_soa_neuron st;
    st.v = g.v; st.free_at = g.ref;
    st.q0 = g.q0; st.q1 = g.q1; st.q2 = g.q2; st.q3 = g.q3;
    st.spikes = spikes;
#if QSN_TIES
    st.near = spikes;  // (no tie counting: QSN_TIES is 0 in network builds)
#endif
    return st;
}

// The group's parameters as neuron.cuh's qsn_params, for the call starting at absolute step t0.
QSN_NET_FN qsn_params qsn_net_params(const qsn_net_group& g, const int t0) {
    const qsn_params p = {g.v_rest, g.v_th, g.v_reset, g.decay, g.gain, g.inv_range, g.n_ref, g.delta, g.g1,
                          g.g2, g.dephase_std, g.relax_keep, g.jump_prob, g.jump_keep, g.per_neuron, t0, g.dt,
                          0.0f, g.key0, g.key1};
    return p;
}

// Lane i's constants: `shared` (UNIFORM) or its entries of `consts`.
template <bool UNIFORM>
QSN_DEVICE qsn_consts qsn_lane_consts(const qsn_consts& shared, const qsn_soa_consts& consts, const int i) {
    qsn_consts c = shared;
    if (!UNIFORM) {
        qsn_consts& to = c;
        const qsn_soa_consts& from = consts;
        QSN_CONSTS(QSN_GET)
    }
    return c;
}

// Whether every lane of a block takes qsn_step's small-angle form at step s with these inputs
// (qsn_small_angle of the membrane potential the step will reach): a pass over the block's V and input,
// in L1, that spares the sweep the sine and the square root when it holds (at dt = 0.1 ms, nearly always).
template <bool UNIFORM>
QSN_NET_FN bool qsn_block_small(const int m, const qsn_soa_neuron& state, const qsn_consts& shared,
                                const qsn_soa_consts& consts, const float* __restrict__ input, const int s) {
#define QSN_LANE(name) (UNIFORM ? shared.name : consts.name[i])
    int large = 0;
QSN_IVDEP
    for (int i = 0; i < m; ++i) {
        const float v = qsn_membrane(state.v[i], input[i], s < state.free_at[i], QSN_LANE(v_rest), QSN_LANE(decay),
                                     QSN_LANE(gain), QSN_LANE(v_reset));
        large |= qsn_small_angle(v, QSN_LANE(v_rest), QSN_LANE(inv_range), QSN_LANE(delta), QSN_LANE(dt)) ? 0 : 1;
    }
#undef QSN_LANE
    return large == 0;
}

// 2. One step s of the m lanes of a block (its arrays: `state`, `consts`; lane 0 is neuron `first` of
// the group; UNIFORM: the constants are `shared`; SMALL: qsn_block_small holds), vectorised across them
// on the CPU; fired[i] says whether lane i spiked.
template <bool UNIFORM, bool RENORM, bool SMALL = false>
QSN_NET_SWEEP void qsn_sweep(const long long first, const int m, const qsn_soa_neuron& state, const qsn_consts& shared,
                          const qsn_soa_consts& consts, const float* __restrict__ input,
                          unsigned char* __restrict__ fired, const int s) {
QSN_IVDEP
    for (int i = 0; i < m; ++i) {
        qsn_consts c = qsn_lane_consts<UNIFORM>(shared, consts, i);
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
        const bool spike = qsn_step(nrn, c, input[i], s, RENORM, SMALL || QSN_SMALL_ANGLE);
        {
            const qsn_soa_neuron& to = state;
            const qsn_neuron& from = nrn;
            QSN_NEURON(QSN_PUT)
        }
        fired[i] = spike;
    }
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

// The random numbers of a stream at absolute step t, as the JAX path draws them: jax.random.fold_in(key,
// t) is threefry(key, (0, t)) (qsn_step_key); entry j of jax.random.uniform under it is
// threefry(key_t, (0, j)) with its two halves xor-ed (the partitionable layout), and the uniform is its
// top 23 bits times 2^-23 (exact in float32; qsn_uniform_at).
QSN_DEVICE void qsn_step_key(const unsigned key0, const unsigned key1, const unsigned t, unsigned& kt0,
                              unsigned& kt1) {
    kt0 = 0u;
    kt1 = t;
    qsn_threefry(key0, key1, kt0, kt1);
}
QSN_DEVICE float qsn_uniform_at(const unsigned kt0, const unsigned kt1, const unsigned j) {
    unsigned x0 = 0u, x1 = j;
    qsn_threefry(kt0, kt1, x0, x1);
    return (float)((x0 ^ x1) >> 9) * 1.1920928955078125e-7f;
}

// Poisson input p's counts for lanes first .. first + m - 1 at absolute step t, added to x.
QSN_NET_FN void qsn_poisson_add(const qsn_net_poisson& p, const unsigned t, const int first, const int m,
                                float* __restrict__ x) {
    unsigned kt0, kt1;
    qsn_step_key(p.key0, p.key1, t, kt0, kt1);
    float u[QSN_NET_LANES];
    int k[QSN_NET_LANES];
    const int* __restrict__ draw = p.draw ? p.draw + first : nullptr;
    for (int i = 0; i < m; ++i) {
        u[i] = qsn_uniform_at(kt0, kt1, draw ? (unsigned)draw[i] : (unsigned)(first + i));
        k[i] = 0;
    }
    for (int j = 0; j < p.length; ++j) {  // the count over the table, every entry (no branch)
        const float c = p.table[j];
        for (int i = 0; i < m; ++i) k[i] += u[i] >= c ? 1 : 0;
    }
    const float w = p.weight;
    for (int i = 0; i < m; ++i) {
#if QSN_NET_POISSON_FMA
        const float add = fmaf(w, (float)k[i], x[i]);
#else
        const float add = x[i] + w * (float)k[i];
#endif
        x[i] = (!draw || draw[i] >= 0) ? add : x[i];
    }
}

// Item j of spike source g at step s of the call (kt0, kt1: its stream's key at that step, qsn_step_key):
// the neuron that it makes spike, or -1. A Poisson source's item j is neuron j, which spikes when its
// uniform is below emit_p[j] (jax.random.uniform(key_t, (n,)) < p); an array source's item j is entry j
// of the step's list, if it has one.
QSN_DEVICE int qsn_emit(const qsn_net_group& g, const unsigned kt0, const unsigned kt1, const int s, const int j) {
    if (g.source == QSN_POISSON_SOURCE) return qsn_uniform_at(kt0, kt1, (unsigned)j) < g.emit_p[j] ? j : -1;
    const int at = g.emit_start[s] + j;
    return at < g.emit_start[s + 1] ? g.emit_idx[at] : -1;
}

// A receptor's variable at arrival, x = syn + ring slot (the slot is cleared) ...
QSN_DEVICE float qsn_take(float* __restrict__ syn, float* __restrict__ ring, const int i) {
    const float x = syn[i] + ring[i];
    ring[i] = 0.0f;
    return x;
}

// ... and what it does: V += x (Delta), input += psc x (PscExp; SHARED: one psc for the group), or
// g += x, g_e += x e_rev (CondExp); then syn = x decay.
template <int KIND, bool SHARED>
QSN_DEVICE void qsn_give(const float x, const int i, float* __restrict__ syn, const float* __restrict__ psc,
                         const float dec, const float e_rev, float* __restrict__ v, float* __restrict__ input,
                         float* __restrict__ g, float* __restrict__ g_e) {
    if (KIND == QSN_DELTA) {
        v[i] = v[i] + x;
    } else if (KIND == QSN_PSC_EXP) {
        const float p = SHARED ? psc[0] : psc[i];
#if QSN_NET_PSC_FMA
        input[i] = fmaf(p, x, input[i]);
#else
        input[i] = input[i] + p * x;
#endif
    } else {
        g[i] = g[i] + x;
#if QSN_NET_COND_FMA & 1
        g_e[i] = fmaf(x, e_rev, g_e[i]);
#else
        g_e[i] = g_e[i] + x * e_rev;
#endif
    }
    syn[i] = x * dec;
}

// Receptor r's arrivals for the m lanes of a block at absolute step t, with the Poisson inputs into it.
template <int KIND, bool SHARED>
QSN_NET_FN void qsn_receptor(const qsn_net_group& g, const int r, const unsigned t, const int first, const int m,
                             float* __restrict__ syn, float* __restrict__ ring, const float* __restrict__ psc,
                             const float dec, float* __restrict__ v, float* __restrict__ input,
                             float* __restrict__ gt, float* __restrict__ ge) {
    const float e = g.e_rev[r];
    bool poisson = false;
    for (int pi = 0; pi < g.n_poisson; ++pi) poisson |= g.poisson[pi].receptor == r;
    if (!poisson) {
        for (int i = 0; i < m; ++i)
            qsn_give<KIND, SHARED>(qsn_take(syn, ring, i), i, syn, psc, dec, e, v, input, gt, ge);
        return;
    }
    float x[QSN_NET_LANES];
    for (int i = 0; i < m; ++i) x[i] = qsn_take(syn, ring, i);
    for (int pi = 0; pi < g.n_poisson; ++pi)  // in the network's order, as the JAX path adds them
        if (g.poisson[pi].receptor == r) qsn_poisson_add(g.poisson[pi], t, first, m, x);
    for (int i = 0; i < m; ++i) qsn_give<KIND, SHARED>(x[i], i, syn, psc, dec, e, v, input, gt, ge);
}

// The equivalent current of conductances held over one step (networks/synapse.py cond_current, in its
// order of operations): with G = sum g, E = sum g e_rev and the other inputs' drive D = r_m I,
// V_inf = (v_rest + E + D) / (1 + G), V' = V_inf + (V - V_inf) decay^(1 + G), and the current J for which
// the neuron step's v_rest + (V - v_rest) decay + gain J is V'. powf is libm's, as XLA's CPU backend calls.
QSN_DEVICE float qsn_net_cond_current(const float v, const float g_total, const float g_e, const float r_m,
                                      const float current, const float v_rest, const float decay, const float gain) {
    const float one_g = 1.0f + g_total;
#if QSN_NET_COND_FMA & 2
    const float num = fmaf(r_m, current, v_rest + g_e);
#else
    const float num = (v_rest + g_e) + r_m * current;
#endif
    const float v_inf = num / one_g;
    const float pw = powf(decay, one_g);
#if QSN_NET_COND_FMA & 4
    const float v_new = fmaf(v - v_inf, pw, v_inf);
#else
    const float v_new = v_inf + (v - v_inf) * pw;
#endif
#if QSN_NET_COND_FMA & 8
    const float dv = fmaf(-(v - v_rest), decay, v_new - v_rest);
#else
    const float dv = (v_new - v_rest) - (v - v_rest) * decay;
#endif
    return dv / gain;
}

// 1 and 3 for neurons first .. first + m - 1 of group g at absolute step t: arrivals from ring slot `slot`
// and the Poisson inputs into V (Delta), the input current (PscExp) or the conductances (CondExp), then
// receptor decay; `input` gets each lane's current for the neuron step. `shared`: bit r, receptor r's
// psc is one value; bit 31, i_const is (the CPU checks per call; the GPU passes 0).
QSN_NET_FN void qsn_arrivals(const qsn_net_group& g, const unsigned t, const int slot, const int first, const int m,
                             const unsigned shared, float* __restrict__ input) {
    const int n = g.n, D = g.depth;
    float* __restrict__ v = g.v + first;
    if (shared >> 31) {
        const float c = g.i_const[0];
        for (int i = 0; i < m; ++i) input[i] = c;
    } else {
        for (int i = 0; i < m; ++i) input[i] = g.i_const[first + i];
    }
    bool cond = false;
    for (int r = 0; r < g.receptors; ++r) cond |= g.kinds[r] == QSN_COND_EXP;
    float gt[QSN_NET_LANES], ge[QSN_NET_LANES];
    if (cond)
        for (int i = 0; i < m; ++i) gt[i] = ge[i] = 0.0f;
    for (int r = 0; r < g.receptors; ++r) {
        float* __restrict__ ring = g.ring + ((long long)r * D + slot) * n + first;
        float* __restrict__ syn = g.syn + (long long)r * n + first;
        const float* __restrict__ psc = g.psc + (long long)r * n + ((shared >> r) & 1 ? 0 : first);
        const float dec = g.decays[r];
        const int kind = g.kinds[r];
        if (kind == QSN_DELTA)
            qsn_receptor<QSN_DELTA, true>(g, r, t, first, m, syn, ring, psc, dec, v, input, gt, ge);
        else if (kind == QSN_COND_EXP)
            qsn_receptor<QSN_COND_EXP, true>(g, r, t, first, m, syn, ring, psc, dec, v, input, gt, ge);
        else if ((shared >> r) & 1)
            qsn_receptor<QSN_PSC_EXP, true>(g, r, t, first, m, syn, ring, psc, dec, v, input, gt, ge);
        else
            qsn_receptor<QSN_PSC_EXP, false>(g, r, t, first, m, syn, ring, psc, dec, v, input, gt, ge);
    }
    if (cond) {
        const int pn = g.per_neuron;
        for (int i = 0; i < m; ++i) {
            const int j = first + i;
            const float v_rest = g.v_rest[(pn >> QSN_BIT_V_REST) & 1 ? j : 0];
            const float decay = g.decay[(pn >> QSN_BIT_DECAY) & 1 ? j : 0];
            const float gain = g.gain[(pn >> QSN_BIT_GAIN) & 1 ? j : 0];
            input[i] = qsn_net_cond_current(v[i], gt[i], ge[i], g.r_m[j], input[i], v_rest, decay, gain);
        }
    }
}

// Float add into a ring entry: several GPU threads may add into one entry at once.
QSN_DEVICE void qsn_net_add(float* __restrict__ where, const float value) {
#ifdef __CUDACC__
    atomicAdd(where, value);
#else
    *where += value;
#endif
}

// Int add into a counter that other threads may update at the same time; returns the old value.
QSN_DEVICE long long qsn_net_count(long long* counter, const long long by) {
#ifdef __CUDACC__
    return (long long)atomicAdd((unsigned long long*)counter, (unsigned long long)by);
#else
    const long long old = *counter;
    *counter = old + by;
    return old;
#endif
}
QSN_DEVICE int qsn_net_count(int* counter, const int by) {
#ifdef __CUDACC__
    return atomicAdd(counter, by);
#else
    const int old = *counter;
    *counter = old + by;
    return old;
#endif
}

// The row of source neuron `neuron` in event projection p, or -1 if it has none (a projection from a
// contiguous view g[a:b] stores the rows of a .. b - 1 only).
QSN_DEVICE int qsn_net_row(const qsn_net_projection& p, const int neuron) {
    const int row = neuron - p.first;
    return row >= 0 && row < p.n_pre ? row : -1;
}

// 4. Columns lane, lane + stride, ... of the ELL row of presynaptic neuron `neuron` into the ring buffer
// of the projection's target, whose step t reads slot `slot` (= t % D): delay d lands in slot
// (t + 1 + d) % D, which is (slot + 1 + d) reduced once, since d < D. Rows are left-packed: the row's
// length ends it.
QSN_NET_FN void qsn_net_deliver_row(const qsn_net_projection& p, const qsn_net_group& post, const int slot,
                                    const int neuron, const int lane, const int stride) {
    const int row = qsn_net_row(p, neuron);
    if (row < 0) return;
    const int D = post.depth, n_post = p.n_post, W = p.width, length = p.lengths[row];
    const int next = slot + 1 == D ? 0 : slot + 1;
    float* __restrict__ base = post.ring + (long long)p.receptor * D * n_post;
    const long long first = (long long)row * W;
    const int* __restrict__ tg = p.targets + first;
    const float* __restrict__ w = p.weights + first;
    if (p.delay >= 0) {  // one delay: one ring row for the whole step
        int at = next + p.delay;
        at -= at >= D ? D : 0;
        float* __restrict__ dest = base + (long long)at * n_post;
        for (int j = lane; j < length; j += stride) qsn_net_add(dest + tg[j], w[j]);
        return;
    }
    const int span = D * n_post, start = next * n_post;
    const int* __restrict__ off = p.delays + first;
    for (int j = lane; j < length; j += stride) {
        int at = start + off[j];
        at -= at >= span ? span : 0;
        qsn_net_add(base + at + tg[j], w[j]);
    }
}

// 4. Dense path: columns q0 .. q0 + m - 1 of delay d, the sum of the spiking rows (in list order),
// then into the delay's slot.
QSN_NET_FN void qsn_net_deliver_dense(const qsn_net_projection& p, const qsn_net_group& post, const int slot,
                                      const int d, const int q0, const int m, const int* __restrict__ spiked,
                                      const int n_spiked) {
    const int D = post.depth, n_post = p.n_post;
    float acc[QSN_NET_LANES];
    for (int q = 0; q < m; ++q) acc[q] = 0.0f;
    for (int k = 0; k < n_spiked; ++k) {
        const float* __restrict__ w = p.weights + ((long long)d * p.n_pre + spiked[k]) * n_post + q0;
        for (int q = 0; q < m; ++q) acc[q] += w[q];
    }
    const int next = slot + 1 == D ? 0 : slot + 1;
    int at = next + p.delays[d];
    at -= at >= D ? D : 0;
    float* __restrict__ row = post.ring + ((long long)p.receptor * D + at) * n_post + q0;
    for (int q = 0; q < m; ++q) qsn_net_add(row + q, acc[q]);
}

// 5. STDP, the JAX path's update (networks/plasticity.py STDP.update) in passes, each over items no other
// pass of its phase touches: (a) the traces' decay, every pre neuron i (x_pre, its value kept in
// `scratch`) and post neuron j (x_post_old = x_post decay_minus, x_post = x_post_old; the old x_post kept in
// x_post_old[n_post + j]); (b) the spikes: x = fma(old x, decay, 1) (XLA's contraction of x decay + spike)
// for the spiking pre and post neurons, and depression along the rows of the
// spiking pre neurons, w -= a_minus x_post_old[j] (times w - w_min when multiplicative); (c)
// potentiation along the columns of the spiking post neurons, w += a_plus x_pre[i] (times w_max - w);
// (d) additive bounds: clip what (b) and (c) touched (on the first step of a call, every slot, as the JAX
// path clips all of them each step).
QSN_DEVICE void qsn_stdp_decay_pre(const qsn_net_projection& p, const int i) {
    p.scratch[i] = p.x_pre[i];
    p.x_pre[i] = p.x_pre[i] * p.decay_plus;
}
QSN_DEVICE void qsn_stdp_decay_post(const qsn_net_projection& p, const int j) {
    p.x_post_old[p.n_post + j] = p.x_post[j];
    p.x_post_old[j] = p.x_post[j] * p.decay_minus;
    p.x_post[j] = p.x_post_old[j];
}
QSN_DEVICE void qsn_stdp_spike_pre(const qsn_net_projection& p, const int row) {
    p.x_pre[row] = fmaf(p.scratch[row], p.decay_plus, 1.0f);
}
QSN_DEVICE void qsn_stdp_spike_post(const qsn_net_projection& p, const int j) {
    p.x_post[j] = fmaf(p.x_post_old[p.n_post + j], p.decay_minus, 1.0f);
}
QSN_NET_FN void qsn_stdp_depress(const qsn_net_projection& p, const int row, const int lane, const int stride) {
    const long long first = (long long)row * p.width;
    const int length = p.lengths[row];
    for (int k = lane; k < length; k += stride) {
        float& w = p.weights[first + k];
        const float dw = p.a_minus * p.x_post_old[p.targets[first + k]];  // (XLA contracts the bound's product
        w = p.multiplicative ? fmaf(-dw, w - p.w_min, w) : w - dw;          // with the sum, not dw's)
    }
}
QSN_NET_FN void qsn_stdp_potentiate(const qsn_net_projection& p, const int col, const int lane, const int stride) {
    for (int k = p.col_start[col] + lane; k < p.col_start[col + 1]; k += stride) {
        const int slot = p.col_slot[k];
        float& w = p.weights[slot];
        const float dw = p.a_plus * p.x_pre[slot / p.width];  // (as depression: checked against XLA's
        w = p.multiplicative ? fmaf(dw, p.w_max - w, w) : w + dw;  // rounding, tests/kernels)
    }
}
QSN_DEVICE void qsn_stdp_clip(const qsn_net_projection& p, const long long slot) {
    float& w = p.weights[slot];
    w = w < p.w_min ? p.w_min : (w > p.w_max ? p.w_max : w);
}
QSN_NET_FN void qsn_stdp_clip_row(const qsn_net_projection& p, const int row, const int lane, const int stride) {
    for (int k = lane; k < p.lengths[row]; k += stride) qsn_stdp_clip(p, (long long)row * p.width + k);
}
QSN_NET_FN void qsn_stdp_clip_col(const qsn_net_projection& p, const int col, const int lane, const int stride) {
    for (int k = p.col_start[col] + lane; k < p.col_start[col + 1]; k += stride) qsn_stdp_clip(p, p.col_slot[k]);
}

// 6. What neuron i's spike at step s of the call records in monitor m (its group's): its positions'
// bytes of the step's row and their events (SpikeMonitor), or their number (RateMonitor).
QSN_NET_FN void qsn_net_record_spike(qsn_net_monitor& m, const int s, const int i) {
    const int lo = m.start ? m.start[i] : 0, hi = m.start ? m.start[i + 1] : 1;
    if (m.kind == QSN_MON_RATE) {
        qsn_net_count(m.rate + s, hi - lo);
        return;
    }
    if (m.kind != QSN_MON_SPIKES) return;
    unsigned char* __restrict__ row = m.spikes + (long long)s * m.k;
    long long slot = qsn_net_count(&m.n_events, (long long)(hi - lo));
    for (int j = lo; j < hi; ++j, ++slot) {
        const int at = m.start ? m.where[j] : i;
        row[at] = 1;
        if (slot < m.cap) {
            m.ev_step[slot] = s;
            m.ev_pos[slot] = at;
        }
    }
}

// 6. StateMonitor m's sample of neuron i of group g at position `at`, after step s of the call.
QSN_NET_FN void qsn_net_sample(const qsn_net_monitor& m, const qsn_net_group& g, const int s, const int at,
                               const int i) {
    float* __restrict__ out = m.values + ((long long)s * m.k + at) * m.fields;
    out[0] = g.v[i]; out[1] = g.q0[i]; out[2] = g.q1[i]; out[3] = g.q2[i]; out[4] = g.q3[i];
    for (int r = 0; r < g.receptors && 5 + r < m.fields; ++r) out[5 + r] = g.syn[(long long)r * g.n + i];
}

// After a call of `length` steps: the first free step back to refractory steps left.
QSN_DEVICE void qsn_net_finish(const qsn_net_group& g, const int i, const int length) {
    g.ref[i] = g.ref[i] > length ? g.ref[i] - length : 0;
}

// One neuron of DESIGN §1 (docs/model.md) advanced one step, in float32: the step that every launch
// layer runs. kernels/cuda/population.cu launches it one CUDA thread per neuron (and, compiled by g++,
// as the host emulation of the tests); kernels/cpu/population.cpp launches it on the CPU over blocks
// of neurons, threaded and vectorised across each block (the native backend). Only the launch layers
// differ: the constants, the state, the step and the Poisson input are this one text.
//
#include "common.cuh"
// Compile-time configuration (-D, set by kernels/compile.py; one cached module per combination):
//   QSN_MIXED    0: pure state vector (re0, im0, re1, im1); 1: Bloch vector (x, y, z) with T1/T2
//   QSN_SUBSTEPS, QSN_TERMS   mixed-mode Taylor plan of the Lindblad propagator (qsn.lindblad)
//   QSN_INPUT    0: constant current; 1: streamed (T, n) rows; 2: Poisson input (Philox in-kernel)
//   QSN_PACK     write bit-packed spike words (T, ceil(n/32)) uint32
//   QSN_EVENTS   append (step, neuron) spike events
//   QSN_JUMPS    quantum-jump spiking (jump_rate > 0)
//   QSN_DEPHASE, QSN_RELAX   pure mode: finite T2 / T1 unravelled stochastically (random phase kicks,
//                relaxation jumps); the step's random words come from Philox (neuron, t, 1, 0) under
//                the launch's key, so they differ from the JAX path's jax.random draws (same
//                distributions; tests compare statistics)
//   QSN_TIES     count steps whose V lands within tie_tol*|v_th| of the threshold (validation)
//   QSN_RECORD   write state samples (qsn_samples) every `every` steps for the recorded neurons
//   QSN_PRECISE  1: IEEE sqrt/sincos/division, the JAX path's order of operations;
//                0: SFU intrinsics (rsqrt, __sinf, __cosf) and explicit FMAs
//   QSN_SMALL_ANGLE  1: the launcher proved theta = w dt < 0.25 for every step (bound on |a|): the
//                sin(w dt)/w series only, no branch
//   QSN_ANALYSIS tag basic blocks for kernels/ptx.py (static analysis builds only)

// Bit of `per_neuron` that says the parameter is an (n,) array (set) or one shared value (clear);
// kernels/population.py builds the mask in this order (_PARAM_BITS, current, weight, _STOCHASTIC_BITS:
// a test checks).
enum qsn_param_bit {
    QSN_BIT_V_REST, QSN_BIT_V_TH, QSN_BIT_V_RESET, QSN_BIT_DECAY, QSN_BIT_GAIN, QSN_BIT_INV_RANGE, QSN_BIT_N_REF,
    QSN_BIT_DELTA, QSN_BIT_G1, QSN_BIT_G2, QSN_BIT_CURRENT, QSN_BIT_WEIGHT,
    QSN_BIT_DEPHASE_STD, QSN_BIT_RELAX_KEEP, QSN_BIT_JUMP_PROB, QSN_BIT_JUMP_KEEP
};
#define QSN_PARAM(ptr, bit) (ptr)[((p.per_neuron >> (bit)) & 1) ? j : 0]
#define QSN_STOCHASTIC (QSN_JUMPS || QSN_DEPHASE || QSN_RELAX)
// Renormalisation cadence (qsn_step's `renorm`) at absolute step t: every step in precise builds (as
// the JAX path, psi / |psi|), the last of every 4 in fast ones (a Newton step). A float32 step moves |psi|^2 (or |r|^2) by ~1e-7 in
// rounding; the Newton step turns an error e into -3e^2/4, so |psi|^2 - 1 stays within the rounding of
// the 3 steps since the last correction, at a quarter of the cost.
#define QSN_RENORM_AT(t) (QSN_PRECISE || ((t) & 3) == 3)
#ifndef QSN_SMALL_ANGLE
#define QSN_SMALL_ANGLE 0
#endif
// sin(w dt)/w is a 3-term series below this angle: qsn.dynamics.SERIES_ANGLE["float32"] (a test checks)
#define QSN_SERIES_ANGLE 0.25f

// The population's parameter arrays as the launcher passes them: each is one shared value or (n,)
// values, as bit `qsn_param_bit` of per_neuron says.
struct qsn_params {
    const float *v_rest, *v_th, *v_reset, *decay, *gain, *inv_range;
    const int* n_ref;
    const float *delta, *g1, *g2, *dephase_std, *relax_keep, *jump_prob, *jump_keep;
    int per_neuron, t0;
    float dt, tie_tol;
    unsigned key0, key1;
};

// Per-neuron constants, read once per launch.
// Its fields as one list, X(type, name): the struct below, and the structure of arrays of the CPU
// launch layer (kernels/cpu/population.cpp), are both made from it.
#if QSN_MIXED
#define QSN_CONSTS_MIXED(X) X(float, h) X(float, d2) X(float, e1) X(float, e2)
#else
#define QSN_CONSTS_MIXED(X)
#endif
#if QSN_TIES
#define QSN_CONSTS_TIES(X) X(float, tie_band)
#else
#define QSN_CONSTS_TIES(X)
#endif
#if QSN_STOCHASTIC  // Philox counter (neuron, t0 + s, 1, 0) under key (key0, key1)
#define QSN_CONSTS_STOCHASTIC(X) X(unsigned, neuron) X(unsigned, t0) X(unsigned, key0) X(unsigned, key1) \
    X(float, dephase_std) X(float, relax_drop) X(float, relax_amp) X(float, jump_prob) X(float, jump_keep) X(float, jump_amp)
#else
#define QSN_CONSTS_STOCHASTIC(X)
#endif
// v_reset: after a spike and while refractory; ref_span: steps a spike blocks, the spike step included (>= 1)
#define QSN_CONSTS(X) X(float, v_rest) X(float, v_th) X(float, v_reset) X(float, decay) X(float, gain) \
    X(float, inv_range) X(float, delta) X(float, dt) X(int, ref_span) QSN_CONSTS_MIXED(X) QSN_CONSTS_TIES(X) \
    QSN_CONSTS_STOCHASTIC(X)
#define QSN_FIELD(type, name) type name;
struct qsn_consts { QSN_CONSTS(QSN_FIELD) };

// Per-neuron state, in registers for the whole launch: free_at is the first step of this launch at
// which the neuron may spike again; q0..q3 are re0 im0 re1 im1 (pure) or x y z (mixed, q3 unused);
// near counts near-threshold steps (QSN_TIES). One list again, X(type, name).
#if QSN_TIES
#define QSN_NEURON_TIES(X) X(int, near)
#else
#define QSN_NEURON_TIES(X)
#endif
#define QSN_NEURON(X) X(float, v) X(int, free_at) X(float, q0) X(float, q1) X(float, q2) X(float, q3) X(int, spikes) \
    QSN_NEURON_TIES(X)
struct qsn_neuron { QSN_NEURON(QSN_FIELD) };

// The constants of neuron j (idle lanes, active false, never spike).
QSN_DEVICE qsn_consts qsn_load_consts(const qsn_params& p, const long long j, const bool active) {
    qsn_consts c;
    c.v_rest = QSN_PARAM(p.v_rest, QSN_BIT_V_REST);
    c.v_th = active ? QSN_PARAM(p.v_th, QSN_BIT_V_TH) : 3.402823466e38f;
    c.v_reset = QSN_PARAM(p.v_reset, QSN_BIT_V_RESET);
    c.decay = QSN_PARAM(p.decay, QSN_BIT_DECAY);
    c.gain = QSN_PARAM(p.gain, QSN_BIT_GAIN);
    c.inv_range = QSN_PARAM(p.inv_range, QSN_BIT_INV_RANGE);
    const int n_ref = QSN_PARAM(p.n_ref, QSN_BIT_N_REF);
    c.ref_span = n_ref > 1 ? n_ref : 1;  // a spike at step s blocks s+1 .. s+n_ref-1 (docs/model.md)
    c.delta = QSN_PARAM(p.delta, QSN_BIT_DELTA);
    c.dt = p.dt;
#if QSN_MIXED
    c.h = p.dt / (float)QSN_SUBSTEPS;
    c.d2 = 2.0f * c.delta * c.h;
    c.e1 = QSN_PARAM(p.g1, QSN_BIT_G1) * c.h;
    c.e2 = QSN_PARAM(p.g2, QSN_BIT_G2) * c.h;
#endif
#if QSN_TIES
    c.tie_band = p.tie_tol * fabsf(c.v_th);
#endif
#if QSN_STOCHASTIC
    c.neuron = (unsigned)j; c.t0 = (unsigned)p.t0; c.key0 = p.key0; c.key1 = p.key1;
    c.dephase_std = QSN_PARAM(p.dephase_std, QSN_BIT_DEPHASE_STD);
    c.relax_drop = 1.0f - QSN_PARAM(p.relax_keep, QSN_BIT_RELAX_KEEP);
    c.relax_amp = sqrtf(QSN_PARAM(p.relax_keep, QSN_BIT_RELAX_KEEP));
    c.jump_prob = QSN_PARAM(p.jump_prob, QSN_BIT_JUMP_PROB);
    c.jump_keep = QSN_PARAM(p.jump_keep, QSN_BIT_JUMP_KEEP);
    c.jump_amp = sqrtf(c.jump_keep);
#endif
    return c;
}

// Neuron j's state at the start of a launch (`ref` steps still refractory = its first free step).
QSN_DEVICE qsn_neuron qsn_load_neuron(const float* v, const int* ref, const float* q0, const float* q1,
                                      const float* q2, const float* q3, const long long j) {
    qsn_neuron nrn;
    nrn.v = v[j];
    nrn.free_at = ref[j];
    nrn.q0 = q0[j]; nrn.q1 = q1[j]; nrn.q2 = q2[j];
    nrn.q3 = QSN_MIXED ? 0.0f : q3[j];
    nrn.spikes = 0;
#if QSN_TIES
    nrn.near = 0;
#endif
    return nrn;
}

// Write neuron i's state back after a launch of `steps` steps.
QSN_DEVICE void qsn_store_neuron(const qsn_neuron& nrn, const int steps, float* v, int* ref, float* q0, float* q1,
                                 float* q2, float* q3, int* count, int* ties, const long long i) {
    v[i] = nrn.v;
    ref[i] = nrn.free_at > steps ? nrn.free_at - steps : 0;
    q0[i] = nrn.q0; q1[i] = nrn.q1; q2[i] = nrn.q2;
    if (!QSN_MIXED) q3[i] = nrn.q3;
    count[i] += nrn.spikes;
#if QSN_TIES
    ties[i] += nrn.near;
#endif
}

// State samples (QSN_RECORD): after step s of a launch with (s + 1) % every == 0, a neuron whose record
// column `col` is >= 0 writes V and q0..q3 into row (s + 1) / every - 1 of the (samples, m) arrays
// (the launcher starts launches on sampling boundaries and derives the observables from these).
struct qsn_samples {
    int every, m;
    const int* col;  // (n,) record column of each neuron, -1: not recorded
    float *v, *q0, *q1, *q2, *q3;
};

QSN_DEVICE void qsn_sample(const qsn_samples& r, const qsn_neuron& nrn, const int s, const int col) {
    if (col < 0 || (s + 1) % r.every != 0) return;
    const long long at = (long long)((s + 1) / r.every - 1) * r.m + col;
    r.v[at] = nrn.v; r.q0[at] = nrn.q0; r.q1[at] = nrn.q1; r.q2[at] = nrn.q2;
    if (!QSN_MIXED) r.q3[at] = nrn.q3;
}

// psi <- K0 psi / |K0 psi| with K0 = diag(1, amp): the no-jump branch of a measurement of |1>.
QSN_DEVICE void qsn_condition_pure(float& re0, float& im0, float& re1, float& im1, const float amp) {
    const float r1 = amp * re1, i1 = amp * im1;
    const float inv = QSN_RSQRT_EXACT(re0 * re0 + im0 * im0 + r1 * r1 + i1 * i1);
    re0 *= inv; im0 *= inv; re1 = r1 * inv; im1 = i1 * inv;
}

// 1-2. refractory and membrane: exact solution for constant input over dt, as two explicit FMAs in
// both builds, fma(gain, I, fma(V - v_rest, decay, v_rest)): the rounding XLA gives
// v_rest + (V - v_rest) decay + gain I (it contracts both products), so that for equal inputs the
// threshold decision is the JAX path's to the last bit (on XLA's CPU backend, V comes out
// bit-identical to it; the unfused form differs by an ulp on some updates). V is v_reset while refractory.
QSN_DEVICE float qsn_membrane(const float v, const float input, const bool is_ref, const float v_rest,
                              const float decay, const float gain, const float v_reset) {
    return is_ref ? v_reset : fmaf(gain, input, fmaf(v - v_rest, decay, v_rest));
}

// 3's drive: a, measured from v_rest (not v_reset), and w^2 = a^2 + delta^2 (H = a sz + delta sx).
QSN_DEVICE float qsn_drive(const float v, const float v_rest, const float inv_range) {
    return __fmul_rn(v - v_rest, inv_range);
}
QSN_DEVICE float qsn_w2(const float a, const float delta) { return a * a + delta * delta; }

// Whether the rotation angle theta = w dt of a neuron at membrane potential v (after 1-2) is below
// QSN_SERIES_ANGLE, where qsn_step's general form takes its series branch too: a launch layer that
// finds it true for every neuron of a block steps the block with small = true (kernels/cpu/network.cpp).
// theta^2 = w^2 dt^2 against the angle's square less 2^-10 of it: no square root, and a margin far
// wider than the rounding of either form's theta, so that both forms agree on the branch.
QSN_DEVICE bool qsn_small_angle(const float v, const float v_rest, const float inv_range, const float delta,
                                const float dt) {
    return qsn_w2(qsn_drive(v, v_rest, inv_range), delta) * (dt * dt) <
           QSN_SERIES_ANGLE * QSN_SERIES_ANGLE * (1.0f - 0x1p-10f);
}

// Fast builds: sin(w dt)/w = dt (1 - theta^2/6 (1 - theta^2/20)) from theta^2 = t2, as two FMAs (the
// precise build keeps the JAX path's order of operations instead).
QSN_DEVICE float qsn_series_sin_over_w(const float t2, const float dt) {
    return dt * fmaf(t2 * (-1.0f / 6.0f), fmaf(t2, -1.0f / 20.0f, 1.0f), 1.0f);
}

// Steps 1-6 of DESIGN §1 for step s of the launch with input current `input`
// (mV, as r_m I); returns whether the neuron spiked. `renorm`: pull |psi| (pure) back to 1, or |r|
// (mixed) back inside the Bloch ball, after the evolution (QSN_RENORM_AT); `small`: the angle is
// below QSN_SERIES_ANGLE (QSN_SMALL_ANGLE, or qsn_small_angle checked by the caller). Both are
// constants at every call site, so the compiler drops the code they rule out.
QSN_DEVICE bool qsn_step(qsn_neuron& nrn, const qsn_consts& c, const float input, const int s, const bool renorm,
                         const bool small = QSN_SMALL_ANGLE) {
#if QSN_STOCHASTIC
    // this step's random words: stream 1 of the neuron's Philox counters (the Poisson input uses stream 0)
    const qsn_u32x4 rnd = qsn_philox(c.neuron, c.t0 + (unsigned)s, 1u, 0u, c.key0, c.key1);
#endif
    const bool is_ref = s < nrn.free_at;
    float v = qsn_membrane(nrn.v, input, is_ref, c.v_rest, c.decay, c.gain, c.v_reset);  // 1-2
    // 3. qubit under H = a sz + delta sx over dt
    const float a = qsn_drive(v, c.v_rest, c.inv_range);
#if QSN_MIXED
    float x = nrn.q0, y = nrn.q1, z = nrn.q2;
    const float a2 = 2.0f * a * c.h;
QSN_UNROLL
    for (int m = 0; m < QSN_SUBSTEPS; ++m) {
        float zx = x, zy = y, zz = z;
QSN_UNROLL
        for (int kk = QSN_TERMS; kk > 0; --kk) {
            const float inv_k = 1.0f / (float)kk;
#if QSN_PRECISE  // the JAX path's order of operations
            const float dx = -c.e2 * zx - a2 * zy;
            const float dy = a2 * zx - c.e2 * zy - c.d2 * zz;
            const float dz = c.d2 * zy - c.e1 * zz + c.e1;
            zx = x + inv_k * dx; zy = y + inv_k * dy; zz = z + inv_k * dz;
#else  // explicit FMAs: 10 operations per term (the compiler leaves differences of products unfused)
            const float dx = fmaf(-a2, zy, -c.e2 * zx);
            const float dy = fmaf(-c.d2, zz, fmaf(-c.e2, zy, a2 * zx));
            const float dz = fmaf(-c.e1, zz, fmaf(c.d2, zy, c.e1));
            zx = fmaf(inv_k, dx, x); zy = fmaf(inv_k, dy, y); zz = fmaf(inv_k, dz, z);
#endif
        }
        x = zx; y = zy; z = zz;
    }
    if (renorm) {  // positivity, |r| <= 1: a rounded propagator can overshoot near the pure surface
        const float r2 = x * x + y * y + z * z;
        if (r2 > 1.0f) {
            QSN_MARK(clamp);
            const float shrink = QSN_RSQRT_EXACT(r2);
            x *= shrink; y *= shrink; z *= shrink;
        }
    }
#else
    float re0 = nrn.q0, im0 = nrn.q1, re1 = nrn.q2, im1 = nrn.q3;
    const float delta = c.delta, dt = c.dt;
    const float w2 = qsn_w2(a, delta);
#if QSN_PRECISE
    const float w = sqrtf(w2);
    const float theta = w * dt;
    const float t2 = theta * theta;
    const float series = dt * (1.0f - t2 / 6.0f * (1.0f - t2 / 20.0f));  // sin(w dt)/w below the series angle
    float sw, cos_t;
    if (small) {  // theta < 0.25 (proved by the launcher, or checked for the block): the series branch only
        cos_t = cosf(theta);
        sw = series;
    } else {
        float sin_t;
        sincosf(theta, &sin_t, &cos_t);
        const float sin_over_w = sin_t / (w > 0.0f ? w : 1.0f);
        sw = theta < QSN_SERIES_ANGLE ? series : sin_over_w;
    }
    // U psi = cos psi - i sin/w H psi, in the JAX path's order of operations
    const float h_re0 = a * re0 + delta * re1, h_im0 = a * im0 + delta * im1;
    const float h_re1 = delta * re0 - a * re1, h_im1 = delta * im0 - a * im1;
    re0 = cos_t * re0 + sw * h_im0; im0 = cos_t * im0 - sw * h_re0;
    re1 = cos_t * re1 + sw * h_im1; im1 = cos_t * im1 - sw * h_re1;
#else
    // sin(w dt)/w and cos(w dt): the series where theta is small (the common case at dt = 0.1 ms, and
    // where the SFU sine's absolute error would dominate), the SFU sine only beyond; constants as
    // products, since a fast-math division is an SFU reciprocal plus a multiply
    float sw, cos_t;
    if (small) {  // theta < 0.25 (proved by the launcher, or checked for the block): no branch
        const float t2 = w2 * (dt * dt);  // theta^2 = w^2 dt^2
        sw = qsn_series_sin_over_w(t2, dt);
        cos_t = QSN_SMALL_COS(w2, t2, dt);
    } else {
        const float rw = QSN_RSQRT(w2 > 1e-30f ? w2 : 1e-30f);  // 1/w: one SFU op gives w and the division (a
        // select, not fmaxf: the same for every w2, NaN included, and it vectorises on the CPU)
        const float theta = w2 * rw * dt;
        const float t2 = theta * theta;
        cos_t = QSN_FAST_COS(theta);
        if (theta < QSN_SERIES_ANGLE) {
            QSN_MARK(series);
            sw = qsn_series_sin_over_w(t2, dt);
        } else {
            QSN_MARK(sine);
            sw = QSN_FAST_SIN(theta) * rw;
        }
    }
    // U = [[c - i s a, -i s d], [-i s d, c + i s a]] (s = sin/w): 2 products, then 3 FMA-able terms per
    // component (14 operations instead of the 22 of the JAX path's form)
    const float sa = sw * a, sd = sw * delta;
    const float n_re0 = fmaf(sd, im1, fmaf(sa, im0, cos_t * re0)), n_im0 = fmaf(-sd, re1, fmaf(-sa, re0, cos_t * im0));
    const float n_re1 = fmaf(sd, im0, fmaf(-sa, im1, cos_t * re1)), n_im1 = fmaf(-sd, re0, fmaf(sa, re1, cos_t * im1));
    re0 = n_re0; im0 = n_im0; re1 = n_re1; im1 = n_im1;
#endif
#if QSN_DEPHASE
    {   // pure dephasing unravelled: psi1 <- e^{i phi} psi1, phi ~ N(0, 2 gphi dt) (Box-Muller, u1 in (0, 1])
        const float u1 = 1.0f - qsn_uniform24(rnd.z), u2 = qsn_uniform24(rnd.w);
        const float phi = c.dephase_std * sqrtf(-2.0f * QSN_LOG(u1)) * QSN_COS(6.2831853071795865f * u2);
        const float sp = QSN_SIN(phi), cp = QSN_COS(phi);
        const float n_re1 = cp * re1 - sp * im1, n_im1 = sp * re1 + cp * im1;
        re1 = n_re1; im1 = n_im1;
    }
#endif
#if !QSN_RELAX  // (the relaxation below leaves psi normalised on every step: reset to |0> or conditioned)
    if (renorm) {
        const float n2 = fmaf(im1, im1, fmaf(re1, re1, fmaf(im0, im0, re0 * re0)));
#if QSN_PRECISE  // psi / |psi|, as the JAX path (qsn.dynamics.renormalise)
        const float f = QSN_RSQRT_EXACT(n2);
#else  // psi (3 - |psi|^2)/2: one Newton step of 1/sqrt at 1, no SFU operation
        const float f = fmaf(-0.5f, n2, 1.5f);
#endif
        re0 *= f; im0 *= f; re1 *= f; im1 *= f;
    }
#endif
#if QSN_RELAX
    {   // relaxation jump to |0> with probability p1 (1 - exp(-dt/t1)); else condition on no jump
        const float p1 = re1 * re1 + im1 * im1;
        if (qsn_uniform24(rnd.y) < p1 * c.relax_drop) {
            re0 = 1.0f; im0 = 0.0f; re1 = 0.0f; im1 = 0.0f;
        } else {
            qsn_condition_pure(re0, im0, re1, im1, c.relax_amp);
        }
    }
#endif
#endif
    // 5-6. threshold and spike (4: quantum-jump spiking, not while refractory)
#if QSN_TIES
    nrn.near += (!is_ref && fabsf(v - c.v_th) <= c.tie_band) ? 1 : 0;
#endif
#if QSN_JUMPS
#if QSN_MIXED
    const float p1 = 0.5f * (1.0f - z);
#else
    const float p1 = re1 * re1 + im1 * im1;
#endif
    const bool jumped = !is_ref && qsn_uniform24(rnd.x) < p1 * c.jump_prob;
    if (!is_ref && !jumped) {  // no jump seen: condition on it, K0 = diag(1, exp(-jump_rate dt / 2))
#if QSN_MIXED
        const float p0 = 1.0f - p1, p1k = c.jump_keep * p1;
        const float inv = 1.0f / (p0 + p1k), kh = c.jump_amp * inv;
        x *= kh; y *= kh; z = (p0 - p1k) * inv;
#else
        qsn_condition_pure(re0, im0, re1, im1, c.jump_amp);
#endif
    }
    const bool spike = (!is_ref && v >= c.v_th) || jumped;
#else
    const bool spike = !is_ref && v >= c.v_th;
#endif
    if (spike) {
        v = c.v_reset;
        nrn.free_at = s + c.ref_span;
        ++nrn.spikes;
#if QSN_MIXED
        x = 0.0f; y = 0.0f; z = 1.0f;
#else
        re0 = 1.0f; im0 = 0.0f; re1 = 0.0f; im1 = 0.0f;
#endif
    }
    nrn.v = v;
#if QSN_MIXED
    nrn.q0 = x; nrn.q1 = y; nrn.q2 = z;
#else
    nrn.q0 = re0; nrn.q1 = im0; nrn.q2 = re1; nrn.q3 = im1;
#endif
    return spike;
}

// The Poisson input's word for one absolute step t: word t % 4 of the Philox block (neuron, t / 4, 0, 0)
// (the main loop takes the block's 4 words in order instead; this serves steps off a block boundary).
QSN_DEVICE unsigned qsn_poisson_word(const unsigned neuron, const unsigned t, const unsigned seed0, const unsigned seed1) {
    const qsn_u32x4 b = qsn_philox(neuron, t >> 2, 0u, 0u, seed0, seed1);
    return (t & 2u) ? ((t & 1u) ? b.w : b.z) : ((t & 1u) ? b.y : b.x);
}

// Poisson input: k input spikes by inversion of the CDF table (k = #{j : cdf[j] <= u}), then
// offset + weight k. `word` is one 32-bit Philox output (qsn.PoissonCurrent draws the same).
// COUNT 0: a search that stops at the first cdf[j] > u (about lambda + 1 comparisons: the GPU's form);
// COUNT 1: every entry compared, no branch (the same k, since the table is non-decreasing; the CPU's
// form, which vectorises across neurons).
template <bool COUNT = false>
QSN_DEVICE float qsn_poisson_input(const unsigned word, const float* __restrict__ cdf, const int cdf_len,
                                   const float offset, const float weight) {
    const float u = qsn_uniform24(word);
    int k = 0;
    if (COUNT) {
        for (int j = 0; j < cdf_len; ++j) k += cdf[j] <= u ? 1 : 0;
    } else {
        for (;;) {
            QSN_MARK(inversion);
            if (k >= cdf_len || u < cdf[k]) break;
            ++k;
        }
    }
    return __fadd_rn(offset, __fmul_rn(weight, (float)k));
}


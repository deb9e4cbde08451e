// Fused multi-step population update (DESIGN §1, deterministic part): one launch advances every
// neuron T steps with its state in registers; only the input (streamed mode), the spike outputs and
// the final state touch memory. One thread per neuron; lanes past n stay alive (idle) so that the
// warp-level spike outputs see full warps.
//
// Compile-time configuration (-D, set by kernels/compile.py; one cached module per combination):
//   QSN_MIXED    0: pure state vector (re0, im0, re1, im1); 1: Bloch vector (x, y, z) with T1/T2
//   QSN_SUBSTEPS, QSN_TERMS   mixed-mode Taylor plan of the Lindblad propagator (qsn.lindblad)
//   QSN_INPUT    0: constant current; 1: streamed (T, n) rows; 2: Poisson input (Philox in-kernel)
//   QSN_PACK     write bit-packed spike words (T, ceil(n/32)) uint32
//   QSN_EVENTS   append (step, neuron) spike events
//   QSN_TIES     count steps whose V lands within tie_tol*|v_th| of the threshold (validation)
//   QSN_PRECISE  1: IEEE sqrt/sincos/division; 0: SFU intrinsics (rsqrt, __sincosf)
// The membrane update uses round-to-nearest intrinsics, never contracted into an FMA, so the
// threshold decision is the JAX path's to the last bit for equal inputs.

#define QSN_PARAM(ptr, bit) (ptr)[((per_neuron >> (bit)) & 1) ? j : 0]

QSN_KERNEL qsn_population(
    const int n, const long long threads, const int steps, const int t0,
    const float* __restrict__ v_rest_p, const float* __restrict__ v_th_p, const float* __restrict__ decay_p,
    const float* __restrict__ gain_p, const float* __restrict__ inv_range_p, const int* __restrict__ n_ref_p,
    const float* __restrict__ delta_p, const float* __restrict__ g1_p, const float* __restrict__ g2_p,
    const int per_neuron, const float dt,
    float* __restrict__ v_io, int* __restrict__ ref_io,
    float* __restrict__ q0_io, float* __restrict__ q1_io, float* __restrict__ q2_io, float* __restrict__ q3_io,
    const float* __restrict__ current, const float* __restrict__ weight,
    const float* __restrict__ cdf, const int cdf_len, const unsigned seed0, const unsigned seed1,
    int* __restrict__ count, unsigned* __restrict__ words, const int words_per_step,
    qsn_u64* __restrict__ ev_counter, int* __restrict__ ev_step, int* __restrict__ ev_neuron, const qsn_u64 ev_capacity,
    int* __restrict__ ties, const float tie_tol)
{
    QSN_FOR_EACH_THREAD(i, threads) {
        const bool active = i < n;
        const long long j = active ? i : 0;  // idle lanes read neuron 0 and write nothing
        // idle lanes get an unreachable threshold instead of a test per step
        const float v_rest = QSN_PARAM(v_rest_p, 0), v_th = active ? QSN_PARAM(v_th_p, 1) : 3.402823466e38f;
        const float decay = QSN_PARAM(decay_p, 2);
        const float gain = QSN_PARAM(gain_p, 3), inv_range = QSN_PARAM(inv_range_p, 4);
        const int n_ref = QSN_PARAM(n_ref_p, 5);
        const float delta = QSN_PARAM(delta_p, 6);
        // refractory as the first step that may spike again (relative to this launch): one compare per
        // step instead of a countdown; a spike at step s blocks s+1 .. s+n_ref-1 (DESIGN §1)
        const int ref_span = n_ref > 1 ? n_ref : 1;
#if QSN_INPUT != 1
        const float drive = QSN_PARAM(current, 9);  // constant current, or the Poisson input's offset
#endif
#if QSN_INPUT == 2
        const float w_in = QSN_PARAM(weight, 10);
#endif
#if QSN_MIXED
        const float g1 = QSN_PARAM(g1_p, 7), g2 = QSN_PARAM(g2_p, 8);
        const float h = dt / (float)QSN_SUBSTEPS;
        const float d2 = 2.0f * delta * h, e1 = g1 * h, e2 = g2 * h;
        float x = q0_io[j], y = q1_io[j], z = q2_io[j];
#else
        float re0 = q0_io[j], im0 = q1_io[j], re1 = q2_io[j], im1 = q3_io[j];
#endif
        float v = v_io[j];
        int free_at = ref_io[j];  // steps still refractory = first free step of this launch
        int spikes = 0;
#if QSN_INPUT == 2
        qsn_u32x4 block = {0u, 0u, 0u, 0u};
#endif
#if QSN_TIES
        int near = 0;
#endif
#pragma unroll 1  // one step per iteration: the static analysis (kernels/ptx.py) reads per-step costs off the loop
        for (int s = 0; s < steps; ++s) {
            // 1-2. refractory bookkeeping and membrane (exact solution for constant input over dt)
#if QSN_INPUT == 0
            const float input = drive;
#elif QSN_INPUT == 1
            const float input = current[(long long)s * n + j];
#else
            // one Philox block gives the words of 4 consecutive steps: counter (neuron, t / 4, 0, 0),
            // word t % 4 (qsn.PoissonCurrent draws the same)
            const unsigned t_abs = (unsigned)(t0 + s);
            if (s == 0 || (t_abs & 3u) == 0u) {
                QSN_MARK(philox);
                block = qsn_philox((unsigned)j, t_abs >> 2, 0u, 0u, seed0, seed1);
            }
            const unsigned lane_word = (t_abs & 2u) ? ((t_abs & 1u) ? block.w : block.z) : ((t_abs & 1u) ? block.y : block.x);
            const float u = qsn_uniform24(lane_word);
            int k = 0;
            for (;;) {  // Poisson count by inversion of the CDF table: k = #{j : cdf[j] <= u}
                QSN_MARK(inversion);
                if (k >= cdf_len || u < cdf[k]) break;
                ++k;
            }
            const float input = __fadd_rn(drive, __fmul_rn(w_in, (float)k));
#endif
            const bool is_ref = s < free_at;
            v = __fadd_rn(__fadd_rn(v_rest, __fmul_rn(v - v_rest, decay)), __fmul_rn(gain, input));
            v = is_ref ? v_rest : v;
            // 3. qubit under H = a sz + delta sx over dt
            const float a = __fmul_rn(v - v_rest, inv_range);
#if QSN_MIXED
            const float a2 = 2.0f * a * h;
            float zx = x, zy = y, zz = z;
#pragma unroll
            for (int m = 0; m < QSN_SUBSTEPS; ++m) {
                zx = x; zy = y; zz = z;
#pragma unroll
                for (int kk = QSN_TERMS; kk > 0; --kk) {
                    const float inv_k = 1.0f / (float)kk;
#if QSN_PRECISE  // the JAX path's order of operations
                    const float dx = -e2 * zx - a2 * zy;
                    const float dy = a2 * zx - e2 * zy - d2 * zz;
                    const float dz = d2 * zy - e1 * zz + e1;
                    zx = x + inv_k * dx; zy = y + inv_k * dy; zz = z + inv_k * dz;
#else  // explicit FMAs: 10 operations per term (the compiler leaves differences of products unfused)
                    const float dx = fmaf(-a2, zy, -e2 * zx);
                    const float dy = fmaf(-d2, zz, fmaf(-e2, zy, a2 * zx));
                    const float dz = fmaf(-e1, zz, fmaf(d2, zy, e1));
                    zx = fmaf(inv_k, dx, x); zy = fmaf(inv_k, dy, y); zz = fmaf(inv_k, dz, z);
#endif
                }
                x = zx; y = zy; z = zz;
            }
#else
            const float w2 = a * a + delta * delta;
#if QSN_PRECISE
            const float w = sqrtf(w2);
            const float theta = w * dt;
            float sin_t, cos_t;
            sincosf(theta, &sin_t, &cos_t);
            const float sin_over_w = sin_t / (w > 0.0f ? w : 1.0f);
            const float t2 = theta * theta;
            const float sw = theta < 0.25f ? dt * (1.0f - t2 / 6.0f * (1.0f - t2 / 20.0f)) : sin_over_w;
            // U psi = cos psi - i sin/w H psi, in the JAX path's order of operations
            const float h_re0 = a * re0 + delta * re1, h_im0 = a * im0 + delta * im1;
            const float h_re1 = delta * re0 - a * re1, h_im1 = delta * im0 - a * im1;
            re0 = cos_t * re0 + sw * h_im0; im0 = cos_t * im0 - sw * h_re0;
            re1 = cos_t * re1 + sw * h_im1; im1 = cos_t * im1 - sw * h_re1;
#else
            const float rw = QSN_RSQRT(fmaxf(w2, 1e-30f));  // 1/w: one SFU op gives w and the division
            const float theta = w2 * rw * dt;
            const float t2 = theta * theta;
            const float cos_t = QSN_FAST_COS(theta);
            // sin(w dt)/w: the series where theta is small (the common case at dt = 0.1 ms, and where
            // the SFU sine's absolute error would dominate), the SFU sine only beyond; constants as
            // products, since a fast-math division is an SFU reciprocal plus a multiply
            float sw;
            if (theta < 0.25f) {
                QSN_MARK(series);
                sw = dt * fmaf(t2 * (-1.0f / 6.0f), fmaf(t2, -1.0f / 20.0f, 1.0f), 1.0f);
            } else {
                QSN_MARK(sine);
                sw = QSN_FAST_SIN(theta) * rw;
            }
            // U = [[c - i s a, -i s d], [-i s d, c + i s a]] (s = sin/w): 2 products, then 3 FMA-able
            // terms per component (14 operations instead of the 22 of the JAX path's form)
            const float sa = sw * a, sd = sw * delta;
            const float n_re0 = fmaf(sd, im1, fmaf(sa, im0, cos_t * re0)), n_im0 = fmaf(-sd, re1, fmaf(-sa, re0, cos_t * im0));
            const float n_re1 = fmaf(sd, im0, fmaf(-sa, im1, cos_t * re1)), n_im1 = fmaf(-sd, re0, fmaf(sa, re1, cos_t * im1));
            re0 = n_re0; im0 = n_im0; re1 = n_re1; im1 = n_im1;
#endif
#endif
            // 5-6. threshold and spike
#if QSN_TIES
            near += (!is_ref && fabsf(v - v_th) <= tie_tol * fabsf(v_th)) ? 1 : 0;
#endif
            const bool spike = !is_ref && v >= v_th;
            if (spike) {
                v = v_rest;
                free_at = s + ref_span;
                ++spikes;
#if QSN_MIXED
                x = 0.0f; y = 0.0f; z = 1.0f;
#else
                re0 = 1.0f; im0 = 0.0f; re1 = 0.0f; im1 = 0.0f;
#endif
            }
#if QSN_PACK
            qsn_pack_bit(words, (long long)s * words_per_step + (i >> 5), i, spike);
#endif
#if QSN_EVENTS
            qsn_emit_event(ev_counter, ev_step, ev_neuron, ev_capacity, t0 + s, (int)i, spike);
#endif
        }
        if (active) {
            v_io[i] = v;
            ref_io[i] = free_at > steps ? free_at - steps : 0;
#if QSN_MIXED
            q0_io[i] = x; q1_io[i] = y; q2_io[i] = z;
#else
            q0_io[i] = re0; q1_io[i] = im0; q2_io[i] = re1; q3_io[i] = im1;
#endif
            count[i] += spikes;
#if QSN_TIES
            ties[i] += near;
#endif
        }
    }
}

// The population kernel on CUDA: one thread per neuron, all T steps of a launch with the state in
// registers (qsn_step of neuron.cuh); only the input (streamed mode), the spike outputs and the final
// state touch memory. Lanes past n stay alive (idle) so that the warp-level spike outputs see full
// warps. Compiled by g++, each "thread" runs in turn: the host emulation of the tests.
#include "neuron.cuh"

QSN_KERNEL qsn_population(
    const int n, const long long threads, const int steps, const int t0,
    const float* __restrict__ v_rest_p, const float* __restrict__ v_th_p, const float* __restrict__ v_reset_p,
    const float* __restrict__ decay_p,
    const float* __restrict__ gain_p, const float* __restrict__ inv_range_p, const int* __restrict__ n_ref_p,
    const float* __restrict__ delta_p, const float* __restrict__ g1_p, const float* __restrict__ g2_p,
    const float* __restrict__ dephase_std_p, const float* __restrict__ relax_keep_p,
    const float* __restrict__ jump_prob_p, const float* __restrict__ jump_keep_p,
    const int per_neuron, const float dt, const unsigned key0, const unsigned key1,
    float* __restrict__ v_io, int* __restrict__ ref_io,
    float* __restrict__ q0_io, float* __restrict__ q1_io, float* __restrict__ q2_io, float* __restrict__ q3_io,
    const float* __restrict__ current, const float* __restrict__ weight,
    const float* __restrict__ cdf, const int cdf_len, const unsigned seed0, const unsigned seed1,
    int* __restrict__ count, unsigned* __restrict__ words, const int words_per_step,
    qsn_u64* __restrict__ ev_counter, int* __restrict__ ev_step, int* __restrict__ ev_neuron, const qsn_u64 ev_capacity,
    int* __restrict__ ties, const float tie_tol,
    const int rec_every, const int* __restrict__ rec_col, const int rec_m, float* __restrict__ rec_v,
    float* __restrict__ rec_q0, float* __restrict__ rec_q1, float* __restrict__ rec_q2, float* __restrict__ rec_q3)
{
    const qsn_samples rec = {rec_every, rec_m, rec_col, rec_v, rec_q0, rec_q1, rec_q2, rec_q3};
    const qsn_params p = {v_rest_p, v_th_p, v_reset_p, decay_p, gain_p, inv_range_p, n_ref_p, delta_p, g1_p, g2_p,
                          dephase_std_p, relax_keep_p, jump_prob_p, jump_keep_p, per_neuron, t0, dt, tie_tol, key0, key1};
    QSN_FOR_EACH_THREAD(i, threads) {
        const bool active = i < n;
        const long long j = active ? i : 0;  // idle lanes read neuron 0 and write nothing
        const qsn_consts c = qsn_load_consts(p, j, active);
        qsn_neuron nrn = qsn_load_neuron(v_io, ref_io, q0_io, q1_io, q2_io, q3_io, j);
        const int rec_c = (QSN_RECORD && active) ? rec.col[j] : -1;
        // Spike outputs of step s (warp-level: every lane of the warp calls them at the same s).
#define QSN_EMIT(s_, spike_)                                                                              \
        do {                                                                                               \
            const bool spiked_ = (spike_);  /* evaluated once: it advances the neuron */                  \
            if (QSN_PACK) qsn_pack_bit(words, (long long)(s_) * words_per_step + (i >> 5), i, spiked_);   \
            if (QSN_EVENTS) qsn_emit_event(ev_counter, ev_step, ev_neuron, ev_capacity, t0 + (s_), (int)i, spiked_); \
            if (QSN_RECORD) qsn_sample(rec, nrn, (s_), rec_c);                                            \
        } while (0)
        // The loop is aligned to absolute steps t = t0 + s: steps before the first multiple of 4 run one
        // at a time, then 4 per iteration, then the rest. The 4th step of each aligned group (t % 4 == 3)
        // renormalises in fast builds (every step in precise ones), so where it happens depends on t only
        // and a run split in launches equals one launch.
#if QSN_INPUT == 2
        // Poisson input: one Philox block gives the words of 4 consecutive absolute steps, counter
        // (neuron, t / 4, 0, 0), word t % 4; the main loop draws one block per iteration, the steps off a
        // block boundary draw their own.
        const float offset = QSN_PARAM(current, QSN_BIT_CURRENT), w_in = QSN_PARAM(weight, QSN_BIT_WEIGHT);
#define QSN_WORD_AT(s_) qsn_poisson_word((unsigned)j, (unsigned)(t0 + (s_)), seed0, seed1)
#define QSN_BLOCK_AT(s_) qsn_philox((unsigned)j, (unsigned)(t0 + (s_)) >> 2, 0u, 0u, seed0, seed1)
#define QSN_INPUT_AT(s_, word_) qsn_poisson_input((word_), cdf, cdf_len, offset, w_in)
#elif QSN_INPUT == 1
#define QSN_WORD_AT(s_) 0u
#define QSN_BLOCK_AT(s_) qsn_u32x4{0u, 0u, 0u, 0u}
#define QSN_INPUT_AT(s_, word_) current[(long long)(s_) * n + j]  // streamed (T, n) rows, coalesced
#else
        const float drive = QSN_PARAM(current, QSN_BIT_CURRENT);
#define QSN_WORD_AT(s_) 0u
#define QSN_BLOCK_AT(s_) qsn_u32x4{0u, 0u, 0u, 0u}
#define QSN_INPUT_AT(s_, word_) drive
#endif
        int s = 0;
        for (; s < steps && ((t0 + s) & 3) != 0; ++s) {
            const unsigned word = QSN_WORD_AT(s);
            QSN_EMIT(s, qsn_step(nrn, c, QSN_INPUT_AT(s, word), s, QSN_RENORM_AT(t0 + s)));
        }
#pragma unroll 1  // 4 steps per iteration (kernels/ptx.py divides the loop's cost by 4)
        for (; s + 4 <= steps; s += 4) {
            const qsn_u32x4 b = QSN_BLOCK_AT(s);
            QSN_EMIT(s, qsn_step(nrn, c, QSN_INPUT_AT(s, b.x), s, QSN_PRECISE));
            QSN_EMIT(s + 1, qsn_step(nrn, c, QSN_INPUT_AT(s + 1, b.y), s + 1, QSN_PRECISE));
            QSN_EMIT(s + 2, qsn_step(nrn, c, QSN_INPUT_AT(s + 2, b.z), s + 2, QSN_PRECISE));
            QSN_EMIT(s + 3, qsn_step(nrn, c, QSN_INPUT_AT(s + 3, b.w), s + 3, true));
        }
        for (; s < steps; ++s) {  // t % 4 < 3 here
            const unsigned word = QSN_WORD_AT(s);
            QSN_EMIT(s, qsn_step(nrn, c, QSN_INPUT_AT(s, word), s, QSN_PRECISE));
        }
#undef QSN_WORD_AT
#undef QSN_BLOCK_AT
#undef QSN_INPUT_AT
#undef QSN_EMIT
        if (active) qsn_store_neuron(nrn, steps, v_io, ref_io, q0_io, q1_io, q2_io, q3_io, count, ties, i);
    }
}

// The population kernel on the CPU: the native backend's launch layer. The neuron and its step are
// kernels/cuda/neuron.cuh, the same text the CUDA kernel runs; this file only lays the work out for a
// CPU (docs/kernels.md):
//   * neurons in blocks of QSN_BLOCK, a multiple of 32 (a spike word never straddles two blocks);
//     OpenMP threads take whole blocks;
//   * a block's state lives in structure-of-arrays form on the stack (about 8 KiB at 256 neurons, so
//     it stays in L1) for all steps of the launch: each step is one sweep over the block that g++
//     vectorises across neurons (its loop vectoriser, after inlining the step and turning its
//     structs into scalars; `#pragma omp simd` would instead keep them in memory, where the step's
//     conditional reset cannot be vectorised), the only memory traffic being streamed input rows and
//     the spike outputs;
//   * parameters shared by the whole population (the usual case) are loop invariants in registers;
//     per-neuron ones are read per lane from the block's constants, also structure of arrays;
//   * outputs that serialise (spike words, events) leave the vector sweep through a per-step byte
//     mask and are written by a scalar pass, skipped when the block did not spike.
// The arguments are the CUDA kernel's (kernels/population.py assembles one list for both).
#include "neuron.cuh"
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef QSN_BLOCK
#define QSN_BLOCK 256
#endif
static_assert(QSN_BLOCK % 32 == 0, "a block holds whole spike words");

namespace {

constexpr int B = QSN_BLOCK;

// Block state, structure of arrays made from neuron.cuh's field lists: lane k is neuron base + k.
#define QSN_SOA(type, name) type name[B];
#define QSN_PUT(type, name) to.name[k] = from.name;
#define QSN_GET(type, name) to.name = from.name[k];
struct qsn_block {
    QSN_NEURON(QSN_SOA)
    float input[B];
    unsigned char fired[B];
};
struct qsn_block_consts { QSN_CONSTS(QSN_SOA) };  // per-neuron constants (not in the uniform case)

// One step s of every lane of the block: qsn_step on each lane's state, vectorised across lanes.
// UNIFORM: every neuron has the constants `shared` (only the Philox counter's neuron differs);
// otherwise lane k's are in `consts`.
template <bool UNIFORM, bool RENORM>
inline void qsn_sweep(qsn_block& b, const qsn_consts& shared, const qsn_block_consts& consts,
                      const unsigned base, const int s) {
#pragma GCC ivdep
    for (int k = 0; k < B; ++k) {
        qsn_consts c = shared;
        if (!UNIFORM) {
            qsn_consts& to = c;
            const qsn_block_consts& from = consts;
            QSN_CONSTS(QSN_GET)
        }
#if QSN_STOCHASTIC
        if (UNIFORM) c.neuron = base + (unsigned)k;
#endif
        qsn_neuron nrn;
        {
            qsn_neuron& to = nrn;
            const qsn_block& from = b;
            QSN_NEURON(QSN_GET)
        }
        const bool spike = qsn_step(nrn, c, b.input[k], s, RENORM);
        {
            qsn_block& to = b;
            const qsn_neuron& from = nrn;
            QSN_NEURON(QSN_PUT)
        }
        b.fired[k] = spike;
    }
}

}  // namespace

// Threads of the native backend's launches (0: OpenMP's default, OMP_NUM_THREADS or every core). The
// setting is the calling thread's and outlives the call, so 0 sets the default back explicitly (else a
// launch after one with threads=1 would keep 1).
extern "C" void qsn_set_threads(const int threads) {
#ifdef _OPENMP
    const char* env = getenv("OMP_NUM_THREADS");
    const int from_env = env ? atoi(env) : 0;  // the first entry of a list, as OpenMP's outermost level
    omp_set_num_threads(threads > 0 ? threads : (from_env > 0 ? from_env : omp_get_num_procs()));
#else
    (void)threads;
#endif
}

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
    (void)threads;
    const qsn_params p = {v_rest_p, v_th_p, v_reset_p, decay_p, gain_p, inv_range_p, n_ref_p, delta_p, g1_p, g2_p,
                          dephase_std_p, relax_keep_p, jump_prob_p, jump_keep_p, per_neuron, t0, dt, tie_tol, key0, key1};
    const int param_mask = (1 << QSN_BIT_CURRENT) - 1;  // the neuron's constants; input bits are separate
    const bool uniform = (per_neuron & param_mask) == 0 && !(per_neuron >> QSN_BIT_DEPHASE_STD);
    const long long blocks = ((long long)n + B - 1) / B;
#pragma omp parallel for schedule(dynamic, 1)
    for (long long blk = 0; blk < blocks; ++blk) {
        const long long base = blk * B;
        const int active = (int)((long long)n - base < B ? (long long)n - base : B);
        qsn_block b;
        static thread_local qsn_block_consts consts;
        const qsn_consts shared = qsn_load_consts(p, 0, true);
        for (int k = 0; k < B; ++k) {
            // lanes past n repeat the last neuron: they compute, and nothing of theirs is written
            const long long j = base + (k < active ? k : active - 1);
            {
                const qsn_neuron from = qsn_load_neuron(v_io, ref_io, q0_io, q1_io, q2_io, q3_io, j);
                qsn_block& to = b;
                QSN_NEURON(QSN_PUT)
            }
            if (!uniform) {
                const qsn_consts from = qsn_load_consts(p, j, true);
                qsn_block_consts& to = consts;
                QSN_CONSTS(QSN_PUT)
            }
            b.input[k] = 0.0f;
#if QSN_INPUT == 0
            b.input[k] = QSN_PARAM(current, QSN_BIT_CURRENT);
#endif
        }
#if QSN_INPUT == 2
        unsigned block_words[4][B];  // Philox block (neuron, t / 4, 0, 0): the Poisson words of 4 steps
        float offset[B], w_in[B];
        for (int k = 0; k < active; ++k) {
            const long long j = base + k;
            offset[k] = QSN_PARAM(current, QSN_BIT_CURRENT);
            w_in[k] = QSN_PARAM(weight, QSN_BIT_WEIGHT);
        }
#endif
        for (int s = 0; s < steps; ++s) {
            const int t = t0 + s;
#if QSN_INPUT == 1
            memcpy(b.input, current + (long long)s * n + base, sizeof(float) * active);
#elif QSN_INPUT == 2
            if (s == 0 || (t & 3) == 0) {
                for (int k = 0; k < active; ++k) {
                    const qsn_u32x4 w = qsn_philox((unsigned)(base + k), (unsigned)t >> 2, 0u, 0u, seed0, seed1);
                    block_words[0][k] = w.x; block_words[1][k] = w.y; block_words[2][k] = w.z; block_words[3][k] = w.w;
                }
            }
            const unsigned* __restrict__ word = block_words[t & 3];
            for (int k = 0; k < active; ++k)
                b.input[k] = qsn_poisson_input<true>(word[k], cdf, cdf_len, offset[k], w_in[k]);
#endif
            const bool renorm = QSN_RENORM_AT(t);
            if (uniform) {
                if (renorm) qsn_sweep<true, true>(b, shared, consts, (unsigned)base, s);
                else qsn_sweep<true, false>(b, shared, consts, (unsigned)base, s);
            } else {
                if (renorm) qsn_sweep<false, true>(b, shared, consts, (unsigned)base, s);
                else qsn_sweep<false, false>(b, shared, consts, (unsigned)base, s);
            }
#if QSN_RECORD
            if ((s + 1) % rec.every == 0) {
                for (int k = 0; k < active; ++k) {
                    qsn_neuron nrn;
                    qsn_neuron& to = nrn;
                    const qsn_block& from = b;
                    QSN_NEURON(QSN_GET)
                    qsn_sample(rec, nrn, s, rec.col[base + k]);
                }
            }
#endif
            if (QSN_PACK || QSN_EVENTS) {
                int fired = 0;
                for (int k = 0; k < active; ++k) fired += b.fired[k];
                if (fired == 0) continue;
#if QSN_PACK
                unsigned* row = words + (long long)s * words_per_step + (base >> 5);
                for (int w = 0; w * 32 < active; ++w) {
                    unsigned word = 0u;
                    for (int bit = 0; bit < 32 && w * 32 + bit < active; ++bit)
                        word |= (unsigned)b.fired[w * 32 + bit] << bit;
                    row[w] = word;
                }
#endif
#if QSN_EVENTS
                qsn_u64 slot = __atomic_fetch_add(ev_counter, (qsn_u64)fired, __ATOMIC_RELAXED);
                for (int k = 0; k < active; ++k) {
                    if (!b.fired[k]) continue;
                    if (slot < ev_capacity) { ev_step[slot] = t; ev_neuron[slot] = (int)(base + k); }
                    ++slot;
                }
#endif
            }
        }
        for (int k = 0; k < active; ++k) {
            qsn_neuron nrn;
            {
                qsn_neuron& to = nrn;
                const qsn_block& from = b;
                QSN_NEURON(QSN_GET)
            }
            qsn_store_neuron(nrn, steps, v_io, ref_io, q0_io, q1_io, q2_io, q3_io, count, ties, base + k);
        }
    }
}

/* One token of one stream through an LSTM, a GRU or a plain RNN, and the draw of the next: one
   call each; and the same for many streams at once, a server's streams in slots and prompts read
   together (`rnnlm_slots_step`, further down), each stream's numbers those of its step alone.

   At batch 1 a step is a few matrix-vector products and some gate arithmetic. From Python (or
   TorchScript) the arithmetic and the draw are a score of small calls, each costing more than its
   work, and each pulling the interpreter back into a cache the weights have just flushed; here
   they are one pass over the gates while they are still in the first-level cache.

   The weights come in blocks: a block of a layer holds the gates of UNITS units (input, forget,
   cell, output for an LSTM; reset, update, new for a GRU, as torch orders them; one for an RNN)
   for every input, row by row, (inputs, gates x UNITS); a block of the head holds COLUMNS
   logits, (H, COLUMNS). A block's outputs are summed in a few registers while its rows stream
   past once, in memory order: each output adds its inputs one at a time, in order (a fused
   multiply-add each where the CPU has them: the build asks for -ffp-contract=fast, and
   -fno-trapping-math so that the gates' arithmetic vectorizes). Sizes are padded to whole blocks
   with zeros.

   `struct rnnlm_single_model` holds the sizes and one array of pointers to the weights (made
   once, kept alive by the caller):
     [embedding (V, E)] then per layer [W (blocks, in + H, G x UNITS), b (blocks, G x UNITS)]
     (a GRU's b: (blocks, 2, G x UNITS), its input part's bias then its state part's)
     then [head W (head blocks, H, COLUMNS), head b (head blocks x COLUMNS)]
   in = E for the first layer and H above it; a block's first `in` rows act on the layer's input,
   the next H rows on its state. `input_table`, when set, holds every token's first-layer input
   part with its bias, (V, blocks, G x UNITS) (`rnnlm_single_input_table`).

   The state comes in as h (layers, H) and, for an LSTM, c (layers, H), and the new state goes
   out to other memory: a stream's state may be shared with its siblings, so it is never written.

   With a pool (`rnnlm_pool_new`), P threads share a step: thread p takes the same blocks of every
   layer and of the head at every step, so its part of the weights stays in its own core's cache;
   they meet at a barrier after each layer. A helper spins a little for the next step, then
   sleeps. Each output is summed as it is alone, so any number of threads gives the same numbers
   bit for bit. At most MAX_PARTIES threads; more, and the caller steps alone. */

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#define RNNLM_RNN 0
#define RNNLM_LSTM 1
#define RNNLM_GRU 2
#define MAX_PARTIES 64
#define UNITS 16
#define COLUMNS 64
#define SPIN_NS 200000L /* how long a helper spins for the next step before it sleeps */

/* acc (n) += x (k) . w (k, n), row-major: input by input, in order. */
static inline void block_product(float *restrict acc, const float *restrict w, const float *restrict x, int k, int n) {
    for (int j = 0; j < k; j++) {
        const float xj = x[j];
        const float *restrict r = w + (size_t)j * n;
        for (int o = 0; o < n; o++)
            acc[o] += xj * r[o];
    }
}

/* e^a for |a| up to 88 (float's range), to about 1 ulp: Cephes' expf, written so that a loop of
   it vectorizes (no calls, no branches). */
static inline float exp_approx(float a) {
    a = a < -88.0f ? -88.0f : a > 88.0f ? 88.0f : a; /* not fminf and fmaxf: calls, unvectorized */
    const float n = floorf(a * 1.44269504088896341f + 0.5f); /* a = n ln 2 + r, |r| <= ln 2 / 2 */
    const float r = (a - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    const int bits = ((int)n + 127) << 23;
    float two_n;
    __builtin_memcpy(&two_n, &bits, sizeof two_n);
    return e * two_n;
}

static inline float sigmoid(float a) { return 1.0f / (1.0f + exp_approx(-a)); }

static inline float tanh_approx(float a) { return 2.0f * sigmoid(2.0f * a) - 1.0f; }

static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

struct rnnlm_single_model {
    int cell, layers, hidden, embed, vocab;
    const float *const *params;
    const float *input_table; /* (V, blocks, G x UNITS): each token's first-layer input part, or NULL */
};

static int gates_per_unit(const struct rnnlm_single_model *m) {
    return m->cell == RNNLM_LSTM ? 4 : m->cell == RNNLM_GRU ? 3 : 1;
}

/* A GRU keeps its state part apart (its new gate takes r times it): two biases a block. */
static int bias_parts(const struct rnnlm_single_model *m) { return m->cell == RNNLM_GRU ? 2 : 1; }

static int steps_cell(const struct rnnlm_single_model *m) {
    return m->cell == RNNLM_LSTM || m->cell == RNNLM_RNN || m->cell == RNNLM_GRU;
}

static int blocks_of(int size, int block) { return (size + block - 1) / block; }

/* Block `b` of the first layer's gates before its state's part (n = G x UNITS): the table's row,
   or the bias plus the embedding row's product (the same sums in the same order either way). */
static void first_input(const struct rnnlm_single_model *m, long token, int b, int n, float *acc) {
    const size_t row = (size_t)blocks_of(m->hidden, UNITS) * n;
    const float *from = m->input_table != NULL ? m->input_table + token * row + (size_t)b * n
                                               : m->params[2] + (size_t)b * n * bias_parts(m);
    for (int o = 0; o < n; o++)
        acc[o] = from[o];
    if (m->input_table == NULL) {
        const float *w = m->params[1] + (size_t)b * (m->embed + m->hidden) * n;
        block_product(acc, w, m->params[0] + (size_t)token * m->embed, m->embed, n);
    }
}

/* Fills `table` (V, blocks, G x UNITS) with every token's first-layer input part: what
   `first_input` computes. */
void rnnlm_single_input_table(const struct rnnlm_single_model *m, float *table) {
    const struct rnnlm_single_model plain = {m->cell, m->layers, m->hidden, m->embed, m->vocab, m->params, NULL};
    const int n = gates_per_unit(m) * UNITS, blocks = blocks_of(m->hidden, UNITS);
    for (long v = 0; v < m->vocab; v++)
        for (int b = 0; b < blocks; b++)
            first_input(&plain, v, b, n, table + ((size_t)v * blocks + b) * n);
}

struct barrier {
    atomic_int arrived, phase;
};

static void barrier_wait(struct barrier *b, int parties) {
    if (parties == 1)
        return;
    const int phase = atomic_load(&b->phase);
    if (atomic_fetch_add(&b->arrived, 1) == parties - 1) {
        atomic_store(&b->arrived, 0);
        atomic_fetch_add(&b->phase, 1);
        return;
    }
    while (atomic_load(&b->phase) == phase)
        spin_pause();
}

struct step_args {
    const struct rnnlm_single_model *m;
    long token;
    const float *h_in, *c_in;
    float *h_out, *c_out, *logits;
};

/* The new state of a block's `units` units from their gates' sums `acc` (a GRU's state part apart
   in `state_part`) and their old state h, c; written to h_new, c_new (c for an LSTM only). The
   arithmetic runs on all UNITS lanes (a loop of fixed length vectorizes), on copies padded with
   zeros, and only `units` are read and written. */
static inline void block_gates(int cell, const float *restrict acc, const float *restrict state_part, int units,
                               const float *restrict h, const float *restrict c, float *restrict h_new,
                               float *restrict c_new) {
    float old[UNITS] = {0}, fresh_h[UNITS], fresh_c[UNITS];
    if (cell == RNNLM_LSTM) {
        for (int u = 0; u < units; u++)
            old[u] = c[u];
        float gates[4 * UNITS]; /* input, forget, cell, output: a loop each (one of them all does not vectorize) */
        for (int o = 0; o < 4 * UNITS; o++)
            gates[o] = sigmoid(acc[o]);
        for (int u = 0; u < UNITS; u++)
            gates[2 * UNITS + u] = tanh_approx(acc[2 * UNITS + u]);
        for (int u = 0; u < UNITS; u++)
            fresh_c[u] = gates[UNITS + u] * old[u] + gates[u] * gates[2 * UNITS + u];
        for (int u = 0; u < UNITS; u++)
            fresh_h[u] = gates[3 * UNITS + u] * tanh_approx(fresh_c[u]);
        for (int u = 0; u < units; u++)
            c_new[u] = fresh_c[u];
    } else if (cell == RNNLM_GRU) { /* reset, update, new: h' = n + z (h - n) */
        for (int u = 0; u < units; u++)
            old[u] = h[u];
        for (int u = 0; u < UNITS; u++) {
            const float r = sigmoid(acc[u] + state_part[u]), z = sigmoid(acc[UNITS + u] + state_part[UNITS + u]);
            const float fresh = tanh_approx(acc[2 * UNITS + u] + r * state_part[2 * UNITS + u]);
            fresh_h[u] = fresh + z * (old[u] - fresh);
        }
    } else {
        for (int u = 0; u < UNITS; u++)
            fresh_h[u] = tanh_approx(acc[u]);
    }
    for (int u = 0; u < units; u++)
        h_new[u] = fresh_h[u];
}

/* Block b of layer i: its units' gates from input x (in) and state, then their new state. */
static void layer_block(const struct step_args *a, int i, const float *x, int in, int b) {
    const struct rnnlm_single_model *m = a->m;
    const int hidden = m->hidden, per = gates_per_unit(m), n = per * UNITS, gru = m->cell == RNNLM_GRU;
    const float *w = m->params[1 + 2 * i] + (size_t)b * (in + hidden) * n;
    const float *bias = m->params[2 + 2 * i] + (size_t)b * n * bias_parts(m), *h = a->h_in + (size_t)i * hidden;
    float acc[4 * UNITS], state_part[3 * UNITS]; /* a GRU's state part apart from its input part */
    if (i == 0) {
        first_input(m, a->token, b, n, acc);
    } else {
        for (int o = 0; o < n; o++)
            acc[o] = bias[o];
        block_product(acc, w, x, in, n);
    }
    if (gru) {
        for (int o = 0; o < n; o++)
            state_part[o] = bias[n + o];
        block_product(state_part, w + (size_t)in * n, h, hidden, n);
    } else {
        block_product(acc, w + (size_t)in * n, h, hidden, n);
    }
    const int u0 = b * UNITS, units = hidden - u0 < UNITS ? hidden - u0 : UNITS;
    const size_t at = (size_t)i * hidden + u0;
    block_gates(m->cell, acc, state_part, units, h + u0, a->c_in + at, a->h_out + at, a->c_out + at);
}

/* Block c of the head: COLUMNS logits from the top layer's new state x. */
static void head_block(const struct step_args *a, const float *x, int c) {
    const struct rnnlm_single_model *m = a->m;
    const float *w = m->params[1 + 2 * m->layers] + (size_t)c * m->hidden * COLUMNS;
    const float *bias = m->params[2 + 2 * m->layers] + (size_t)c * COLUMNS;
    float acc[COLUMNS];
    for (int o = 0; o < COLUMNS; o++)
        acc[o] = bias[o];
    block_product(acc, w, x, m->hidden, COLUMNS);
    const int v0 = c * COLUMNS, n = m->vocab - v0 < COLUMNS ? m->vocab - v0 : COLUMNS;
    for (int o = 0; o < n; o++)
        a->logits[v0 + o] = acc[o];
}

/* Party p of `parties` of a step of one stream (`struct step_args`): its blocks of every layer,
   meeting the others after each, then its blocks of the head. */
static void run_party(const void *args, int p, int parties, struct barrier *sync) {
    const struct step_args *a = args;
    const struct rnnlm_single_model *m = a->m;
    const int blocks = blocks_of(m->hidden, UNITS), head_blocks = blocks_of(m->vocab, COLUMNS);
    const float *x = m->params[0] + (size_t)a->token * m->embed;
    int in = m->embed;
    for (int i = 0; i < m->layers; i++) {
        for (int b = blocks * p / parties; b < blocks * (p + 1) / parties; b++)
            layer_block(a, i, x, in, b);
        barrier_wait(sync, parties);
        x = a->h_out + (size_t)i * m->hidden;
        in = m->hidden;
    }
    for (int c = head_blocks * p / parties; c < head_blocks * (p + 1) / parties; c++)
        head_block(a, x, c);
}

/* What party p of `parties` does of a step; parties meet at `sync`. */
typedef void (*party_work)(const void *args, int p, int parties, struct barrier *sync);

struct rnnlm_pool {
    int parties, started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_long step;  /* counts the steps handed out */
    atomic_int stop;
    party_work work; /* the step's work, and what it works on */
    const void *args;
    struct barrier sync;
    pthread_t threads[MAX_PARTIES];
    struct helper { struct rnnlm_pool *pool; int party; } helpers[MAX_PARTIES];
};

static long nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000L + now.tv_nsec;
}

/* The next step after `seen`, or -1 when the pool stops: spin for SPIN_NS, then sleep. */
static long next_step(struct rnnlm_pool *pool, long seen) {
    const long since = nanoseconds();
    for (int i = 1;; i++) {
        if (atomic_load(&pool->stop))
            return -1;
        const long step = atomic_load(&pool->step);
        if (step != seen)
            return step;
        if (i % 1024 == 0 && nanoseconds() - since > SPIN_NS)
            break;
        spin_pause();
    }
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->step) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->lock);
    const long step = atomic_load(&pool->stop) ? -1 : atomic_load(&pool->step);
    pthread_mutex_unlock(&pool->lock);
    return step;
}

static void *helper_life(void *arg) {
    struct helper *self = arg;
    struct rnnlm_pool *pool = self->pool;
    long seen = 0;
    while ((seen = next_step(pool, seen)) >= 0) {
        pool->work(pool->args, self->party, pool->parties, &pool->sync);
        barrier_wait(&pool->sync, pool->parties); /* the step's end: the caller may return */
    }
    return NULL;
}

void rnnlm_pool_free(struct rnnlm_pool *pool) {
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int p = 1; p < pool->started; p++)
        pthread_join(pool->threads[p], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

/* A pool of `parties` threads to share steps: the caller and parties - 1 helpers. NULL where the
   threads could not be had. */
struct rnnlm_pool *rnnlm_pool_new(int parties) {
    if (parties < 2 || parties > MAX_PARTIES)
        return NULL;
    struct rnnlm_pool *pool = calloc(1, sizeof(struct rnnlm_pool));
    if (pool == NULL)
        return NULL;
    pool->parties = parties;
    pool->started = 1;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int p = 1; p < parties; p++) {
        pool->helpers[p] = (struct helper){pool, p};
        if (pthread_create(&pool->threads[p], NULL, helper_life, &pool->helpers[p]) != 0) {
            rnnlm_pool_free(pool);
            return NULL;
        }
        pool->started = p + 1;
    }
    return pool;
}

/* One step's `work` on `args` by the pool's threads, or by the caller alone where `pool` is NULL. */
static void step_with(struct rnnlm_pool *pool, party_work work, const void *args) {
    if (pool == NULL) {
        work(args, 0, 1, NULL);
        return;
    }
    pool->work = work;
    pool->args = args;
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->step, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    work(args, 0, pool->parties, &pool->sync);
    barrier_wait(&pool->sync, pool->parties);
}

/* One token: the new state into h_out (and c_out for an LSTM), the logits into `logits` (V), by
   the pool's threads, or by the caller alone where `pool` is NULL (one caller at a time per pool).
   Returns 0, or 1 for a cell this file does not step. */
int rnnlm_single_step(struct rnnlm_pool *pool, const struct rnnlm_single_model *m, long token, const float *h_in,
                      const float *c_in, float *h_out, float *c_out, float *logits) {
    if (!steps_cell(m))
        return 1;
    const struct step_args a = {m, token, h_in, c_in, h_out, c_out, logits};
    step_with(pool, run_party, &a);
    return 0;
}

/* A token drawn from softmax((logits + bias) / temperature) by the inverse of its cumulative
   distribution at u in [0, 1): the first token whose running sum passes u of the total, summed in
   double in vocabulary order, as torch's cumsum does. A token e^-87 or less of the most likely
   one counts as 0 (a banned token's bias is -inf): it is never drawn. */
long rnnlm_draw(const float *logits, const float *bias, int vocab, float temperature, double u) {
    float top = -INFINITY;
    for (int v = 0; v < vocab; v++) {
        const float z = logits[v] + bias[v];
        top = z > top ? z : top;
    }
    double total = 0.0;
    for (int v = 0; v < vocab; v++) {
        const float z = (logits[v] + bias[v] - top) / temperature;
        total += z > -87.0f ? exp_approx(z) : 0.0f;
    }
    const double target = u * total;
    double running = 0.0;
    long last = 0;
    for (int v = 0; v < vocab; v++) {
        const float z = (logits[v] + bias[v] - top) / temperature;
        if (z <= -87.0f)
            continue;
        running += exp_approx(z);
        last = v;
        if (running > target)
            return v;
    }
    return last; /* u within rounding of 1: the last token that can be drawn */
}

/* `count` tokens of one stream written in one call: token t drawn from the logits before it (at
   uniforms[t], as `rnnlm_draw` draws), then stepped, by the pool's threads or (pool NULL) the
   caller alone. The ids go to `tokens`; the state and logits after the last step to h_out,
   c_out and logits_out. With `step_last` 0 the last token is drawn but not stepped (the stream
   ends there) and the outputs are left alone. Returns 0; 1 for a cell this file does not step,
   2 where scratch memory could not be had. */
int rnnlm_single_run(struct rnnlm_pool *pool, const struct rnnlm_single_model *m, const float *logits_in,
                     const float *bias, float temperature, const double *uniforms, int count, int step_last,
                     const float *h_in, const float *c_in, long *tokens, float *h_out, float *c_out,
                     float *logits_out) {
    if (!steps_cell(m))
        return 1;
    const size_t state = (size_t)m->layers * m->hidden;
    float *scratch = malloc(sizeof(float) * (4 * state + (size_t)m->vocab));
    if (scratch == NULL)
        return 2;
    float *h_spare[2] = {scratch, scratch + state}, *c_spare[2] = {scratch + 2 * state, scratch + 3 * state};
    float *logits = scratch + 4 * state;
    const float *scores = logits_in, *h = h_in, *c = c_in;
    for (int t = 0; t < count; t++) {
        tokens[t] = rnnlm_draw(scores, bias, m->vocab, temperature, uniforms[t]);
        if (t == count - 1 && !step_last)
            break;
        const int last = t == count - 1;
        float *h_next = last ? h_out : h_spare[t % 2], *c_next = last ? c_out : c_spare[t % 2];
        float *scores_next = last ? logits_out : logits;
        const struct step_args a = {m, tokens[t], h, c, h_next, c_next, scores_next};
        step_with(pool, run_party, &a);
        scores = scores_next, h = h_next, c = c_next;
    }
    free(scratch);
    return 0;
}

/* --- Many streams at once: a server's streams in slots.

   A block's weights are read once for GROUP streams together: their sums stay in registers while
   the block's rows stream past, each row's vectors used by every stream of the group. Each
   output still adds its inputs one at a time, in order, the same sums as a stream alone: a
   stream's numbers do not depend on the streams it is stepped with, bit for bit. */

#define GROUP 4 /* streams whose sums a block holds in registers at once */

typedef float vec16 __attribute__((vector_size(64), aligned(4))); /* 16 floats, any alignment */

/* acc[s] (VECS x 16, rows `stride` apart) += x[s] (k) . w (k, VECS x 16) for the first `g`
   streams of a group, row by row in order: `block_product` for g streams at once. */
#define GROUP_PRODUCT(VECS, G)                                                                         \
    static void group_product_##VECS##_##G(float *acc, int stride, const float *w, const float *const *x, \
                                           int k) {                                                   \
        vec16 sums[G][VECS];                                                                          \
        for (int s = 0; s < G; s++)                                                                   \
            for (int v = 0; v < VECS; v++)                                                            \
                __builtin_memcpy(&sums[s][v], acc + (size_t)s * stride + 16 * v, sizeof(vec16));      \
        for (int j = 0; j < k; j++) {                                                                 \
            vec16 row[VECS];                                                                          \
            for (int v = 0; v < VECS; v++)                                                            \
                __builtin_memcpy(&row[v], w + ((size_t)j * VECS + v) * 16, sizeof(vec16));            \
            for (int s = 0; s < G; s++) {                                                             \
                const float xj = x[s][j];                                                             \
                for (int v = 0; v < VECS; v++)                                                        \
                    sums[s][v] += xj * row[v];                                                        \
            }                                                                                         \
        }                                                                                             \
        for (int s = 0; s < G; s++)                                                                   \
            for (int v = 0; v < VECS; v++)                                                            \
                __builtin_memcpy(acc + (size_t)s * stride + 16 * v, &sums[s][v], sizeof(vec16));      \
    }
#define GROUP_PRODUCTS(VECS) GROUP_PRODUCT(VECS, 1) GROUP_PRODUCT(VECS, 2) GROUP_PRODUCT(VECS, 3) GROUP_PRODUCT(VECS, 4)
GROUP_PRODUCTS(1)
GROUP_PRODUCTS(3)
GROUP_PRODUCTS(4)

typedef void (*group_product_fn)(float *, int, const float *, const float *const *, int);
static const group_product_fn group_products[5][GROUP] = {
    [1] = {group_product_1_1, group_product_1_2, group_product_1_3, group_product_1_4},
    [3] = {group_product_3_1, group_product_3_2, group_product_3_3, group_product_3_4},
    [4] = {group_product_4_1, group_product_4_2, group_product_4_3, group_product_4_4},
};

/* acc[s] (n, rows `stride` apart) += x[s] (k) . w (k, n) for g streams; n is 16, 48 or 64. */
static void group_product(float *acc, int stride, const float *w, const float *const *x, int k, int n, int g) {
    group_products[n / 16][g - 1](acc, stride, w, x, k);
}

/* Where a layer's step for streams in rows reads and writes: row r's token (first layer) at
   tokens[r * token_step], its input (above it) at x + r H, its old state at h + r H and c + r H, its
   new state to h_new + r H and c_new + r H (c for an LSTM only). */
struct layer_rows {
    const long *tokens;
    long token_step;
    const float *x, *h, *c;
    float *h_new, *c_new;
};

/* Block b of layer i for rows s0 .. s0 + g - 1 of `io`: their units' new state. */
static void rows_layer_block(const struct rnnlm_single_model *m, int i, int b, const struct layer_rows *io, int s0,
                             int g) {
    const int hidden = m->hidden, in = i == 0 ? m->embed : hidden, n = gates_per_unit(m) * UNITS;
    const int gru = m->cell == RNNLM_GRU;
    const float *w = m->params[1 + 2 * i] + (size_t)b * (in + hidden) * n;
    const float *bias = m->params[2 + 2 * i] + (size_t)b * n * bias_parts(m);
    float acc[GROUP][4 * UNITS], state_part[GROUP][3 * UNITS];
    const float *x[GROUP], *h[GROUP];
    for (int s = 0; s < g; s++) {
        const size_t r = s0 + s;
        h[s] = io->h + r * hidden;
        x[s] = i == 0 ? NULL : io->x + r * hidden;
        if (i == 0) {
            first_input(m, io->tokens[r * io->token_step], b, n, acc[s]);
        } else {
            for (int o = 0; o < n; o++)
                acc[s][o] = bias[o];
        }
        if (gru)
            for (int o = 0; o < n; o++)
                state_part[s][o] = bias[n + o];
    }
    if (i > 0)
        group_product(acc[0], 4 * UNITS, w, x, in, n, g);
    if (gru)
        group_product(state_part[0], 3 * UNITS, w + (size_t)in * n, h, hidden, n, g);
    else
        group_product(acc[0], 4 * UNITS, w + (size_t)in * n, h, hidden, n, g);
    const int u0 = b * UNITS, units = hidden - u0 < UNITS ? hidden - u0 : UNITS;
    for (int s = 0; s < g; s++) {
        const size_t at = (size_t)(s0 + s) * hidden + u0;
        block_gates(m->cell, acc[s], state_part[s], units, h[s] + u0, io->c + at, io->h_new + at, io->c_new + at);
    }
}

/* Party p's blocks of layer i for all n rows of `io`. */
static void rows_layer(const struct rnnlm_single_model *m, int i, const struct layer_rows *io, int n, int p,
                       int parties) {
    const int blocks = blocks_of(m->hidden, UNITS);
    for (int b = blocks * p / parties; b < blocks * (p + 1) / parties; b++)
        for (int s0 = 0; s0 < n; s0 += GROUP)
            rows_layer_block(m, i, b, io, s0, n - s0 < GROUP ? n - s0 : GROUP);
}

/* Party p's blocks of the head for n rows of the top layer's state x: logits (n, V). */
static void rows_head(const struct rnnlm_single_model *m, const float *x, int n, float *logits, int p, int parties) {
    const int head_blocks = blocks_of(m->vocab, COLUMNS);
    for (int c = head_blocks * p / parties; c < head_blocks * (p + 1) / parties; c++) {
        const float *w = m->params[1 + 2 * m->layers] + (size_t)c * m->hidden * COLUMNS;
        const float *bias = m->params[2 + 2 * m->layers] + (size_t)c * COLUMNS;
        const int v0 = c * COLUMNS, count = m->vocab - v0 < COLUMNS ? m->vocab - v0 : COLUMNS;
        for (int s0 = 0; s0 < n; s0 += GROUP) {
            const int g = n - s0 < GROUP ? n - s0 : GROUP;
            float acc[GROUP][COLUMNS];
            const float *rows[GROUP];
            for (int s = 0; s < g; s++) {
                rows[s] = x + (size_t)(s0 + s) * m->hidden;
                for (int o = 0; o < COLUMNS; o++)
                    acc[s][o] = bias[o];
            }
            group_product(acc[0], COLUMNS, w, rows, m->hidden, COLUMNS, g);
            for (int s = 0; s < g; s++)
                for (int o = 0; o < count; o++)
                    logits[(size_t)(s0 + s) * m->vocab + v0 + o] = acc[s][o];
        }
    }
}

/* Party p's units of rows (n, H) copied from `from` to `to`. */
static void rows_copy(const struct rnnlm_single_model *m, const float *from, float *to, int n, int p, int parties) {
    const int blocks = blocks_of(m->hidden, UNITS);
    const int u0 = blocks * p / parties * UNITS, u1 = blocks * (p + 1) / parties * UNITS;
    const int end = u1 < m->hidden ? u1 : m->hidden;
    for (size_t r = 0; r < (size_t)n; r++)
        for (int u = u0; u < end; u++)
            to[r * m->hidden + u] = from[r * m->hidden + u];
}

struct slots_args {
    const struct rnnlm_single_model *m;
    int n, tokens_each;  /* streams (the first n slots), tokens read by each */
    long slots;          /* rows of the slots' buffers */
    const long *tokens;  /* (n, tokens_each) */
    float *h, *c;        /* the slots' state, (layers, slots, H) each: read, then overwritten */
    float *outputs[2];   /* scratch, (tokens_each, n, H) each: a layer's new h at every token, */
    float *c_new[2];     /* and (n, H) each: its c, token after token (layer i writes outputs[i % 2]) */
    float *logits;       /* (slots, V): the first n rows written, after the last token */
};

/* Party p of `parties` of `struct slots_args`: layer after layer, token after token, its blocks
   of the layer for every stream, meeting the others after each token (the next one reads all
   the units); then its units of the layer's last state into the slots; then its blocks of the
   head after the last token. A layer's weights stay in cache for all its tokens. */
static void slots_party(const void *args, int p, int parties, struct barrier *sync) {
    const struct slots_args *a = args;
    const struct rnnlm_single_model *m = a->m;
    const size_t rows = (size_t)a->n * m->hidden;
    for (int i = 0; i < m->layers; i++) {
        float *h_slots = a->h + (size_t)i * a->slots * m->hidden, *c_slots = a->c + (size_t)i * a->slots * m->hidden;
        float *out = a->outputs[i % 2];
        const float *below = a->outputs[(i + 1) % 2];
        for (int t = 0; t < a->tokens_each; t++) {
            const struct layer_rows io = {a->tokens + t, a->tokens_each, below + t * rows,
                                          t == 0 ? h_slots : out + (t - 1) * rows, t == 0 ? c_slots : a->c_new[t % 2],
                                          out + t * rows, a->c_new[(t + 1) % 2]};
            rows_layer(m, i, &io, a->n, p, parties);
            barrier_wait(sync, parties);
        }
        rows_copy(m, out + (size_t)(a->tokens_each - 1) * rows, h_slots, a->n, p, parties);
        if (m->cell == RNNLM_LSTM)
            rows_copy(m, a->c_new[a->tokens_each % 2], c_slots, a->n, p, parties);
    }
    rows_head(m, a->outputs[(m->layers - 1) % 2] + (size_t)(a->tokens_each - 1) * rows, a->n, a->logits, p, parties);
}

/* `count` tokens of each of the first n streams of a block of slots, in place: state h and c
   (layers, slots, H; c for an LSTM only) and, after the last token, scores (slots, V). Stream r's
   tokens are tokens[r * count] onwards. With `uniforms` (and count 1), token r is drawn first from
   row r of the scores (at uniforms[r], temperatures[r], as `rnnlm_draw` draws) and written to
   tokens[r]. By the pool's threads or (pool NULL) the caller alone. Returns 0; 1 for a cell this
   file does not step, 2 where scratch memory could not be had. */
int rnnlm_slots_step(struct rnnlm_pool *pool, const struct rnnlm_single_model *m, int n, int count, long slots,
                     float *h, float *c, float *logits, const float *bias, const float *temperatures,
                     const double *uniforms, long *tokens) {
    if (!steps_cell(m))
        return 1;
    if (n <= 0 || count <= 0)
        return 0;
    if (uniforms != NULL)
        for (int r = 0; r < n; r++)
            tokens[r] = rnnlm_draw(logits + (size_t)r * m->vocab, bias, m->vocab, temperatures[r], uniforms[r]);
    const size_t rows = (size_t)n * m->hidden, outputs = (size_t)count * rows;
    float *scratch = malloc(sizeof(float) * (2 * outputs + 2 * rows));
    if (scratch == NULL)
        return 2;
    const struct slots_args a = {m, n, count, slots, tokens, h, c, {scratch, scratch + outputs},
                                 {scratch + 2 * outputs, scratch + 2 * outputs + rows}, logits};
    step_with(pool, slots_party, &a);
    free(scratch);
    return 0;
}

/* `steps` tokens of each of the first n streams of a block of slots, in one call: at each step
   every stream's token drawn from its scores (at uniforms[t * n + r], temperatures[r]), then the
   block stepped on them, as `rnnlm_slots_step` with a draw does it `steps` times. Token t of
   stream r goes to tokens[t * n + r]. Returns what `rnnlm_slots_step` returns. */
int rnnlm_slots_run(struct rnnlm_pool *pool, const struct rnnlm_single_model *m, int n, int steps, long slots,
                    float *h, float *c, float *logits, const float *bias, const float *temperatures,
                    const double *uniforms, long *tokens) {
    for (int t = 0; t < steps; t++) {
        const int code = rnnlm_slots_step(pool, m, n, 1, slots, h, c, logits, bias, temperatures,
                                          uniforms + (size_t)t * n, tokens + (size_t)t * n);
        if (code != 0)
            return code;
    }
    return 0;
}

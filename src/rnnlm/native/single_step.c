/* One token of one stream through an LSTM or a plain RNN, and the draw of the next: one call each.

   At batch 1 a step is a few matrix-vector products and some gate arithmetic. From Python (or
   TorchScript) the arithmetic and the draw are a score of small calls, each costing more than its
   work, and each pulling the interpreter back into a cache the weights have just flushed; here
   they are one pass over the gates while they are still in the first-level cache.

   Every weight matrix is given transposed, (inputs, outputs) row-major, so a product adds one
   input's row at a time to the outputs: the inner loop runs over contiguous outputs and
   vectorizes without reordering any output's sum. Each output adds its inputs in order.

   `struct rnnlm_single_model` holds the sizes and one array of pointers to the weights (made
   once, kept alive by the caller):
     [embedding (V, E)] then per layer [W (in + H, G*H), b (G*H)] then [head W (H, V), head b (V)]
   with G = 4 for an LSTM (gate order input, forget, cell, output, as torch's) and 1 for an RNN.
   in = E for the first layer and H above it; W's first `in` rows act on the layer's input, the
   next H rows on its state. `input_table`, when set, holds every token's first-layer input part
   (`rnnlm_single_input_table`).

   The state comes in as h (layers, H) and, for an LSTM, c (layers, H), and the new state goes
   out to other memory: a stream's state may be shared with its siblings, so it is never written. */

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define RNNLM_LSTM 1
#define RNNLM_RNN 0

/* y (n) += x (k) . w (k, n): eight inputs at a time, each output's sum in input order. */
static void add_product(float *restrict y, const float *restrict w, const float *restrict x, int k, int n) {
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        const float *restrict r = w + (size_t)j * n;
        const float x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
        const float x4 = x[j + 4], x5 = x[j + 5], x6 = x[j + 6], x7 = x[j + 7];
        for (int o = 0; o < n; o++) {
            float s = y[o] + x0 * r[o];
            s += x1 * r[n + o];
            s += x2 * r[2 * n + o];
            s += x3 * r[3 * n + o];
            s += x4 * r[4 * n + o];
            s += x5 * r[5 * n + o];
            s += x6 * r[6 * n + o];
            y[o] = s + x7 * r[7 * n + o];
        }
    }
    for (; j < k; j++) {
        const float xj = x[j];
        const float *restrict r = w + (size_t)j * n;
        for (int o = 0; o < n; o++)
            y[o] += xj * r[o];
    }
}

/* e^a for |a| up to 88 (float's range), to about 1 ulp: Cephes' expf, written so that a loop of
   it vectorizes (no calls, no branches). */
static inline float exp_approx(float a) {
    a = fminf(fmaxf(a, -88.0f), 88.0f);
    const float n = floorf(a * 1.44269504088896341f + 0.5f); /* a = n ln 2 + r, |r| <= ln 2 / 2 */
    const float r = (a - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    union { int i; float f; } two_n = {.i = ((int)n + 127) << 23};
    return e * two_n.f;
}

static inline float sigmoid(float a) { return 1.0f / (1.0f + exp_approx(-a)); }

static inline float tanh_approx(float a) { return 2.0f * sigmoid(2.0f * a) - 1.0f; }

struct rnnlm_single_model {
    int cell, layers, hidden, embed, vocab;
    const float *const *params;
    const float *input_table; /* (V, G*H): each token's first-layer input part with its bias, or NULL */
};

/* The first layer's gates before its state's part: the table's row, or the bias plus the
   embedding row's product (the same sums in the same order either way). */
static void first_input(const struct rnnlm_single_model *m, long token, int g, float *gates) {
    if (m->input_table != NULL) {
        const float *row = m->input_table + (size_t)token * g;
        for (int o = 0; o < g; o++)
            gates[o] = row[o];
        return;
    }
    const float *b = m->params[2];
    for (int o = 0; o < g; o++)
        gates[o] = b[o];
    add_product(gates, m->params[1], m->params[0] + (size_t)token * m->embed, m->embed, g);
}

static int gate_rows(const struct rnnlm_single_model *m) { return (m->cell == RNNLM_LSTM ? 4 : 1) * m->hidden; }

/* Fills `table` (V, G*H) with every token's first-layer input part: what `first_input` computes. */
void rnnlm_single_input_table(const struct rnnlm_single_model *m, float *table) {
    const struct rnnlm_single_model plain = {m->cell, m->layers, m->hidden, m->embed, m->vocab, m->params, NULL};
    const int g = gate_rows(m);
    for (long v = 0; v < m->vocab; v++)
        first_input(&plain, v, g, table + (size_t)v * g);
}

/* One token: the new state into h_out (and c_out for an LSTM), the logits into `logits` (V).
   Returns 0; 1 for a cell this file does not step, 2 where scratch memory could not be had. */
int rnnlm_single_step(const struct rnnlm_single_model *m, long token, const float *h_in, const float *c_in,
                      float *h_out, float *c_out, float *logits) {
    if (m->cell != RNNLM_LSTM && m->cell != RNNLM_RNN)
        return 1;
    const int hidden = m->hidden, g = gate_rows(m);
    float *gates = malloc(sizeof(float) * (size_t)g);
    if (gates == NULL)
        return 2;
    const float *x = m->params[0] + (size_t)token * m->embed; /* (E,) */
    int in = m->embed;
    for (int i = 0; i < m->layers; i++) {
        const float *w = m->params[1 + 2 * i], *b = m->params[2 + 2 * i];
        const float *h = h_in + (size_t)i * hidden;
        if (i == 0) {
            first_input(m, token, g, gates);
        } else {
            for (int o = 0; o < g; o++)
                gates[o] = b[o];
            add_product(gates, w, x, in, g);
        }
        add_product(gates, w + (size_t)in * g, h, hidden, g);
        float *h_new = h_out + (size_t)i * hidden;
        if (m->cell == RNNLM_LSTM) {
            const float *c = c_in + (size_t)i * hidden;
            float *c_new = c_out + (size_t)i * hidden;
            for (int u = 0; u < hidden; u++) {
                const float gi = sigmoid(gates[u]), gf = sigmoid(gates[hidden + u]);
                const float gc = tanh_approx(gates[2 * hidden + u]), go = sigmoid(gates[3 * hidden + u]);
                c_new[u] = gf * c[u] + gi * gc;
                h_new[u] = go * tanh_approx(c_new[u]);
            }
        } else {
            for (int u = 0; u < hidden; u++)
                h_new[u] = tanh_approx(gates[u]);
        }
        x = h_new;
        in = hidden;
    }
    free(gates);
    const float *head_w = m->params[1 + 2 * m->layers], *head_b = m->params[2 + 2 * m->layers];
    for (int v = 0; v < m->vocab; v++)
        logits[v] = head_b[v];
    add_product(logits, head_w, x, hidden, m->vocab);
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

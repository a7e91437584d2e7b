// Kernels of the train_cnn sample (Axle portable dialect: OpenCL and CUDA). Tensors are
// NHWC; one work-item per element written, unless noted.

// feat[n][c] = mean over H*W of a[n][.][.][c]: global average pooling.
AXLE_KERNEL void gap_forward(AXLE_GLOBAL const float* AXLE_RESTRICT a, AXLE_GLOBAL float* AXLE_RESTRICT feat, int N,
                             int HW, int C) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i >= N * C) return;
  const int n = i / C, c = i - n * C;
  float s = 0.0f;
  for (int p = 0; p < HW; ++p) s += a[((long)n * HW + p) * C + c];
  feat[i] = s / (float)HW;
}

// da = dfeat / (H*W) where a > 0 (ReLU's gradient through its output), else 0.
AXLE_KERNEL void gap_relu_backward(AXLE_GLOBAL const float* AXLE_RESTRICT a, AXLE_GLOBAL const float* AXLE_RESTRICT dfeat,
                                   AXLE_GLOBAL float* AXLE_RESTRICT da, int N, int HW, int C) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i >= N * HW * C) return;
  const int c = i % C, n = i / (HW * C);
  da[i] = a[i] > 0.0f ? dfeat[n * C + c] / (float)HW : 0.0f;
}

// g = g * (a > 0): ReLU's gradient in place.
AXLE_KERNEL void relu_backward(AXLE_GLOBAL const float* AXLE_RESTRICT a, AXLE_GLOBAL float* AXLE_RESTRICT g, int total) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i < total && !(a[i] > 0.0f)) g[i] = 0.0f;
}

// One work-item per sample: softmax over `classes` logits, the cross-entropy loss of
// label[n], dlogits = (p - onehot) / N, and whether the arg max is the label.
AXLE_KERNEL void softmax_xent(AXLE_GLOBAL const float* AXLE_RESTRICT logits, AXLE_GLOBAL const int* AXLE_RESTRICT label,
                              AXLE_GLOBAL float* AXLE_RESTRICT dlogits, AXLE_GLOBAL float* AXLE_RESTRICT loss,
                              AXLE_GLOBAL int* AXLE_RESTRICT correct, int N, int classes) {
  const int n = (int)AXLE_GLOBAL_ID(0);
  if (n >= N) return;
  AXLE_GLOBAL const float* z = logits + n * classes;
  float m = z[0];
  int best = 0;
  for (int j = 1; j < classes; ++j)
    if (z[j] > m) m = z[j], best = j;
  float sum = 0.0f;
  for (int j = 0; j < classes; ++j) sum += exp(z[j] - m);
  const int y = label[n];
  for (int j = 0; j < classes; ++j) {
    const float p = exp(z[j] - m) / sum;
    dlogits[n * classes + j] = (p - (j == y ? 1.0f : 0.0f)) / (float)N;
  }
  loss[n] = log(sum) - (z[y] - m);
  correct[n] = best == y ? 1 : 0;
}

// db[j] = sum over n of d[n][j] (the bias gradient of a fully connected layer).
AXLE_KERNEL void column_sums(AXLE_GLOBAL const float* AXLE_RESTRICT d, AXLE_GLOBAL float* AXLE_RESTRICT db, int N,
                             int cols) {
  const int j = (int)AXLE_GLOBAL_ID(0);
  if (j >= cols) return;
  float s = 0.0f;
  for (int n = 0; n < N; ++n) s += d[n * cols + j];
  db[j] = s;
}

// SGD with momentum: v = mu * v - lr * g; w += v.
AXLE_KERNEL void sgd_momentum(AXLE_GLOBAL float* AXLE_RESTRICT w, AXLE_GLOBAL float* AXLE_RESTRICT v,
                              AXLE_GLOBAL const float* AXLE_RESTRICT g, float lr, float mu, int total) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i >= total) return;
  const float nv = mu * v[i] - lr * g[i];
  v[i] = nv;
  w[i] += nv;
}

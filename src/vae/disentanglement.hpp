// Disentanglement metrics on codes [N, L] and known factors [N, F] (integer indices), after
// disentanglement_lib's definitions: MIG, SAP, DCI (lasso importances), the beta-VAE score and
// the FactorVAE score, with the small classifiers they need. Pure functions: no MPI, no files;
// every random draw comes from a vd::Rng stream of the seed. docs/latent.md names every choice.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.hpp"

namespace vd {

// Points for a metric: codes [n, L] (widened to double) and their factors [n, F].
struct FactorSample {
  int64_t n = 0;
  int L = 0, F = 0;
  std::vector<double> codes;     // [n, L]
  std::vector<int32_t> factors;  // [n, F]
  double code(int64_t i, int j) const { return codes[static_cast<size_t>(i) * L + j]; }
  int32_t factor(int64_t i, int k) const { return factors[static_cast<size_t>(i) * F + k]; }
};

// ---- The pieces (exposed for the tests) ---------------------------------------------------

// numpy's histogram discretisation of x[i * stride], i < n: 'bins' equal-width bins from min to
// max (edges min + i * (max - min) / bins in double, as np.linspace), then np.digitize against
// all edges but the last: values 1..bins, the maximum in bin 'bins'. A constant x goes to one bin.
std::vector<int32_t> histogram_bins(const double* x, int64_t n, int64_t stride, int bins);

// Mutual information of two discrete sequences a[i * sa], b[i * sb] (any integer values), in
// nats, from their joint histogram: sum p_ab log(p_ab / (p_a p_b)). mutual_information(a, a) is
// the entropy of a.
double mutual_information(const int32_t* a, int64_t sa, const int32_t* b, int64_t sb, int64_t n);

// sklearn's LinearSVC(C, class_weight="balanced") on one feature (liblinear, L2-regularised
// squared hinge, the intercept a regularised weight of a constant feature 1, one-vs-rest), solved
// exactly (the problem is strictly convex) by Newton's method. Classes are the sorted distinct
// labels. With K > 2 classes the classifier of class k weighs its own points by C * n / (K n_k)
// and the others by C (liblinear's convention); with 2 classes every point gets its class's
// weight and one classifier separates classes[1] (decision > 0) from classes[0].
struct LinearSvc1d {
  std::vector<int32_t> classes;
  std::vector<double> w, b;  // one (w, b) per classifier: K, or 1 when K == 2
  int32_t predict(double x) const;
};
LinearSvc1d fit_linear_svc_1d(const double* x, int64_t sx, const int32_t* y, int64_t sy, int64_t n,
                              double C);

// Lasso, sklearn's objective: min_w 1/(2n) |y - X w|^2 + alpha |w|_1 for X [n, d] and y whose
// columns are centred (so no intercept), by cyclic coordinate descent on the Gram matrix until
// no weight moves by more than 1e-13. Unique when X has full column rank.
std::vector<double> fit_lasso(const std::vector<double>& X, const std::vector<double>& y, int64_t n,
                              int d, double alpha);

// sklearn's LogisticRegression() (lbfgs, C = 1, fit_intercept): the multinomial model for K > 2
// classes, min over W [K, d], b [K] of sum_i -log softmax(W x_i + b)_{y_i} + |W|^2 / (2C) (the
// intercepts are not penalised); for K = 2 the binary model with one w, b (sklearn's "auto"),
// held here as W = [-w/2, w/2], b = [-b/2, b/2]. Solved by Newton's method with a backtracking
// line search until the largest gradient entry (of the objective divided by n) is below 1e-10;
// the intercepts are centred (their mean is free in the multinomial model).
struct LogisticRegression {
  std::vector<int32_t> classes;
  int d = 0;
  std::vector<double> W, b;  // [K, d], [K]
  int iterations = 0;
  double gradient = 0;  // largest |gradient| entry at the solution, objective / n
  std::vector<double> probabilities(const double* x) const;  // [K]
  int32_t predict(const double* x) const;
  double accuracy(const std::vector<double>& X, const std::vector<int32_t>& y) const;
};
LogisticRegression fit_logistic_regression(const std::vector<double>& X,
                                           const std::vector<int32_t>& y, int d, double C);

// ---- The metrics on samples ---------------------------------------------------------------

struct MigResult {
  double mig = 0;
  std::vector<double> mi;       // [L, F] nats
  std::vector<double> entropy;  // [F] nats
  std::vector<double> gap;      // [F] (top MI - second MI) / entropy
};
// MIG (Chen et al. 2018) as disentanglement_lib's discrete_mig: codes discretised per dimension
// by histogram_bins, the gap between the two largest MI of each factor over its entropy,
// averaged over factors. Needs L >= 2 and every factor with at least two values.
MigResult mig(const FactorSample& s, int bins);

struct SapResult {
  double sap = 0;
  std::vector<double> score;  // [L, F] test accuracy of a LinearSvc1d on one code dimension
};
// SAP (Kumar et al. 2018) as disentanglement_lib's sap_score with discrete factors: for each
// code dimension and factor, the test accuracy of fit_linear_svc_1d(C) trained on train; the
// mean over factors of the gap between the two best dimensions.
SapResult sap(const FactorSample& train, const FactorSample& test, double C);

struct DciResult {
  double disentanglement = 0, completeness = 0;
  double error_train = 0, error_test = 0;  // informativeness: mean RMSE of standardised factors
  std::vector<double> importance;          // [L, F] |lasso weights|
};
// DCI (Eastwood & Williams 2018) with the paper's lasso regressor: codes and each factor index
// standardised with the training set's mean and standard deviation, fit_lasso(alpha) per factor,
// importance |w|. Disentanglement and completeness as disentanglement_lib (1 - entropy, base F
// per code and base L per factor, of the importances + 1e-11, weighted by the codes' and the
// factors' share of the total importance). Informativeness: the RMSE of the standardised factor
// predicted from the standardised codes (0 is perfect, 1 is no better than the training mean).
DciResult dci(const FactorSample& train, const FactorSample& test, double alpha);

// ---- Batches with one factor fixed ---------------------------------------------------------

// The rows of a data set by their factor vector, for drawing observations of given factors
// (ground_truth_data.sample_observations_from_factors). Factor k takes values 0..sizes[k]-1.
class FactorLookup {
 public:
  // factors [n, F]. Throws vd::DataError naming 'what' (the file) when a value is outside its
  // size or when the product of the sizes exceeds 2^26.
  FactorLookup(const std::vector<int32_t>& factors, int64_t n, std::vector<int64_t> sizes,
               const std::string& what);
  int F() const { return static_cast<int>(sizes_.size()); }
  const std::vector<int64_t>& sizes() const { return sizes_; }
  int64_t combinations() const { return combinations_; }
  int64_t present() const { return present_; }  // distinct factor vectors with a row
  // Throws vd::DataError when some combination has no row, saying how many have one.
  void require_all(const std::string& metric) const;
  // A uniform draw of every factor: [F].
  std::vector<int32_t> draw(Rng& rng) const;
  // A row with these factors (uniform among several); -1 if none.
  int64_t row(const int32_t* factors, Rng& rng) const;

 private:
  std::vector<int64_t> sizes_, start_, rows_;  // rows_ grouped by key; start_ [combinations + 1]
  int64_t combinations_ = 0, present_ = 0;
  std::string what_;
};

// One point of the beta-VAE score: the fixed factor, and two batches of rows whose factor
// vectors are drawn uniformly, the second taking the first's value of the fixed factor.
struct BetaVaeDraw {
  int factor = 0;
  std::vector<int64_t> rows1, rows2;  // [batch] each
};
std::vector<BetaVaeDraw> draw_beta_vae(const FactorLookup& lookup, int64_t points, int batch,
                                       Rng& rng);
// Features [points, L]: the mean over the batch of |z(rows1) - z(rows2)|.
std::vector<double> beta_vae_features(const std::vector<BetaVaeDraw>& draws,
                                      const std::vector<float>& codes, int L);

// One point of the FactorVAE score: the fixed factor and a batch of rows sharing its value.
struct FactorVaeDraw {
  int factor = 0;
  std::vector<int64_t> rows;  // [batch]
};
std::vector<FactorVaeDraw> draw_factor_vae(const FactorLookup& lookup, int64_t points, int batch,
                                           Rng& rng);

struct FactorVaeResult {
  double train_accuracy = 0, eval_accuracy = 0;
  int active_dims = 0;
  std::vector<double> global_variance;  // [L]
  std::vector<int64_t> train_votes;     // [F, L]
  std::vector<int> classifier;          // [L] factor of each dimension (majority vote)
};
// The FactorVAE score (Kim & Mnih 2018) as disentanglement_lib's factor_vae: global variances
// (ddof 1) over variance_rows, dimensions with a standard deviation below prune_threshold left
// out; each draw votes (its factor, the active dimension of least variance over the batch
// divided by the global variance); a dimension's class is its majority factor (the lowest on a
// tie); the accuracy is the share of votes the classifier gets right.
FactorVaeResult factor_vae_score(const std::vector<float>& codes, int L,
                                 const std::vector<int64_t>& variance_rows,
                                 const std::vector<FactorVaeDraw>& train,
                                 const std::vector<FactorVaeDraw>& eval, int F,
                                 double prune_threshold);

// ---- Everything from a seed -----------------------------------------------------------------

// disentanglement_lib's defaults (its unsupervised_study_v1 metric configs).
struct DisentanglementSettings {
  bool mig = true, sap = true, dci = true, beta_vae = true, factor_vae = true;
  int64_t mig_points = 10000;
  int mig_bins = 20;
  int64_t sap_train = 10000, sap_test = 5000;
  double sap_c = 0.01;
  int64_t dci_train = 10000, dci_test = 5000;
  double dci_alpha = 0.02;
  int beta_vae_batch = 64;
  int64_t beta_vae_train = 10000, beta_vae_eval = 5000;
  double beta_vae_c = 1.0;
  int factor_vae_batch = 64;
  int64_t factor_vae_train = 10000, factor_vae_eval = 5000, factor_vae_variance_points = 10000;
  double factor_vae_prune = 0.05;
};

// Codes of every row of a data set [n, L] and the rows' factors [n, F].
struct EncodedFactors {
  int64_t n = 0;
  int L = 0, F = 0;
  std::vector<float> codes;
  std::vector<int32_t> factors;
  std::vector<int64_t> sizes;      // [F]
  std::vector<std::string> names;  // [F]
  std::string what;                // the file, for messages
};

struct DisentanglementReport {
  std::vector<std::pair<std::string, std::string>>
      about;  // e.g. checkpoint, data: JSON's first keys
  DisentanglementSettings settings;
  uint64_t seed = 0;
  int64_t rows = 0, combinations = 0, present = 0;
  int L = 0;
  std::vector<std::string> names;
  MigResult mig;
  SapResult sap;
  DciResult dci;
  double beta_vae_train = 0, beta_vae_eval = 0;
  FactorVaeResult factor_vae;
};

// The metrics the settings ask for. MIG, SAP and DCI draw their points uniformly (with
// replacement) from the rows; the beta-VAE and FactorVAE scores need a row for every factor
// combination (vae_data shapes --all) and refuse other data. Each metric draws from its own
// stream, Rng(Rng::derive_seed(seed, kDisentanglementStream + m)), m = 0..4 in the order above.
inline constexpr uint64_t kDisentanglementStream = 0xd15e0000;
DisentanglementReport evaluate_disentanglement(const EncodedFactors& data,
                                               const DisentanglementSettings& settings,
                                               uint64_t seed);

// The report as JSON (settings beside the scores, numbers with 17 significant digits) and as a
// console table.
std::string disentanglement_json(const DisentanglementReport& r);
std::string disentanglement_table(const DisentanglementReport& r);

}  // namespace vd

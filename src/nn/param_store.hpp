// vd::ParamStore: every trainable parameter in one flat float buffer and every gradient in a
// second buffer of the same layout, so allreduce and the optimiser are single loops or calls.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace vd {

class ParamStore {
 public:
  // One named tensor: shape in row-major order (PyTorch's), offset and size in floats.
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    size_t offset;
    size_t size;
  };

  // Every entry starts on a 64-byte boundary (kAlignFloats floats) so kernels see aligned
  // rows; the few floats of padding between entries stay zero in params and grads (an
  // elementwise optimiser keeps zeros at zero), so whole-buffer loops remain correct.
  static constexpr size_t kAlignFloats = 16;

  ParamStore() = default;
  // Layers hold a reference to their store, so it never moves.
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;
  ParamStore(ParamStore&&) = delete;
  ParamStore& operator=(ParamStore&&) = delete;

  // Registers a tensor before finalize(); returns its entry index. Throws vd::ShapeError
  // on a duplicate or empty name, an empty shape or a non-positive dimension, and
  // vd::Error after finalize().
  size_t add(std::string name, std::vector<int64_t> shape);
  // Allocates params and grads (64-byte aligned, zero-filled). Throws vd::Error if called twice.
  void finalize();
  bool finalized() const { return finalized_; }

  // Pointers to entry `entry`'s first float; throw vd::Error before finalize() and
  // vd::ShapeError for an index out of range.
  float* param(size_t entry);
  float* grad(size_t entry);
  const float* param(size_t entry) const;
  const float* grad(size_t entry) const;
  std::span<float> param_view(size_t entry) { return {param(entry), entries_.at(entry).size}; }
  std::span<float> grad_view(size_t entry) { return {grad(entry), entries_.at(entry).size}; }

  // The whole buffers, padding included (size() floats each). Empty before finalize().
  std::span<float> params() { return {param_base(), finalized_ ? total_ : 0}; }
  std::span<float> grads() { return {grad_base(), finalized_ ? total_ : 0}; }
  std::span<const float> params() const { return {param_base(), finalized_ ? total_ : 0}; }
  std::span<const float> grads() const { return {grad_base(), finalized_ ? total_ : 0}; }

  size_t size() const { return total_; }  // total floats in each buffer, padding included
  size_t num_parameters() const;          // sum of the entries' sizes (no padding)
  const std::vector<Entry>& entries() const { return entries_; }
  // The entry named `name`; throws vd::ShapeError listing the known names when missing.
  const Entry& find(const std::string& name) const;
  size_t index_of(const std::string& name) const;  // same lookup, returning the index
  void zero_grads();

  // Gradients go to `grads` (size() floats, 64-byte aligned, owned by the caller and alive as
  // long as the store) instead of the store's own buffer, e.g. memory shared by the ranks of
  // a node; the current gradients are copied there. nullptr returns to the own buffer.
  void use_external_grads(float* grads);
  // The same for the parameters (one copy shared by the ranks of a node); with copy = false
  // the external memory already holds them (another rank copied them in).
  void use_external_params(float* params, bool copy = true);
  // Points the parameters at `params` (size() floats, 64-byte aligned; nullptr = the store's
  // own buffer) without copying anything, and returns what they pointed at before (nullptr =
  // the own buffer), to point them back with. For forward passes with other weights of the
  // same model (the moving average) that leave the optimizer's untouched.
  float* point_params_at(float* params);

 private:
  struct FreeDeleter {
    void operator()(float* p) const;
  };
  using Buffer = std::unique_ptr<float[], FreeDeleter>;

  void check_entry(size_t entry) const;
  float* grad_base() const { return grads_external_ ? grads_external_ : grads_.get(); }
  float* param_base() const { return params_external_ ? params_external_ : params_.get(); }

  std::vector<Entry> entries_;
  size_t total_ = 0;
  bool finalized_ = false;
  Buffer params_;
  Buffer grads_;
  float* grads_external_ = nullptr;
  float* params_external_ = nullptr;
};

}  // namespace vd

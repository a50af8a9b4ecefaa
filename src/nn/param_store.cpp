// vd::ParamStore: registration, aligned allocation and lookup of the flat parameter buffers.
#include "nn/param_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.hpp"

namespace vd {

namespace {

// 64-byte aligned, zero-filled; aligned_alloc needs the byte count to be a multiple of 64.
float* alloc_zeroed(size_t floats) {
  const size_t bytes = std::max<size_t>(64, (floats * sizeof(float) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return static_cast<float*>(p);
}

}  // namespace

void ParamStore::FreeDeleter::operator()(float* p) const {
  std::free(p);
}

size_t ParamStore::add(std::string name, std::vector<int64_t> shape) {
  VD_CHECK(!finalized_, Error,
           "ParamStore::add(\"" + name +
               "\") was called after finalize(); register every "
               "parameter before finalizing the store.");
  VD_CHECK(!name.empty(), ShapeError, "ParamStore::add() needs a non-empty parameter name.");
  VD_CHECK(!shape.empty(), ShapeError,
           "Parameter \"" + name + "\" has an empty shape; give at least one dimension.");
  size_t n = 1;
  for (int64_t d : shape) {
    VD_CHECK(d > 0, ShapeError,
             "Parameter \"" + name + "\" has shape " + shape_text(shape) +
                 " with a non-positive dimension.");
    n *= static_cast<size_t>(d);
  }
  for (const Entry& e : entries_)
    VD_CHECK(e.name != name, ShapeError,
             "Parameter \"" + name + "\" is registered twice in the ParamStore.");
  const size_t offset = (total_ + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  entries_.push_back(Entry{std::move(name), std::move(shape), offset, n});
  total_ = offset + n;
  return entries_.size() - 1;
}

void ParamStore::finalize() {
  VD_CHECK(!finalized_, Error, "ParamStore::finalize() was called twice.");
  // Pad the tail too so a vectorised whole-buffer loop may run to a multiple of 16.
  total_ = (total_ + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  params_ = Buffer(alloc_zeroed(total_));
  grads_ = Buffer(alloc_zeroed(total_));
  finalized_ = true;
}

void ParamStore::check_entry(size_t entry) const {
  VD_CHECK(finalized_, Error,
           "ParamStore buffers were accessed before finalize(); call finalize() after the "
           "last add().");
  VD_CHECK(entry < entries_.size(), ShapeError,
           "ParamStore entry index " + std::to_string(entry) + " is out of range (the store has " +
               std::to_string(entries_.size()) + " entries).");
}

float* ParamStore::param(size_t entry) {
  check_entry(entry);
  return param_base() + entries_[entry].offset;
}
float* ParamStore::grad(size_t entry) {
  check_entry(entry);
  return grad_base() + entries_[entry].offset;
}
const float* ParamStore::param(size_t entry) const {
  check_entry(entry);
  return param_base() + entries_[entry].offset;
}
const float* ParamStore::grad(size_t entry) const {
  check_entry(entry);
  return grad_base() + entries_[entry].offset;
}

size_t ParamStore::num_parameters() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.size;
  return n;
}

size_t ParamStore::index_of(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return i;
  std::string names;
  for (const Entry& e : entries_) names += (names.empty() ? "" : ", ") + e.name;
  throw ShapeError("Parameter \"" + name + "\" is not in the ParamStore; known parameters: " +
                   (names.empty() ? std::string("(none)") : names) + ".");
}

const ParamStore::Entry& ParamStore::find(const std::string& name) const {
  return entries_[index_of(name)];
}

void ParamStore::zero_grads() {
  if (finalized_) std::memset(grad_base(), 0, total_ * sizeof(float));
}

void ParamStore::use_external_grads(float* grads) {
  if (!finalized_) throw Error("ParamStore::use_external_grads() needs finalize() first");
  if (grads != nullptr && reinterpret_cast<uintptr_t>(grads) % (kAlignFloats * sizeof(float)) != 0)
    throw ShapeError("external gradient memory must be 64-byte aligned");
  if (grads != nullptr)
    std::memcpy(grads, grads_.get(), total_ * sizeof(float));
  else if (grads_external_ != nullptr)
    std::memcpy(grads_.get(), grads_external_, total_ * sizeof(float));
  grads_external_ = grads;
}

void ParamStore::use_external_params(float* params, bool copy) {
  if (!finalized_) throw Error("ParamStore::use_external_params() needs finalize() first");
  if (params != nullptr &&
      reinterpret_cast<uintptr_t>(params) % (kAlignFloats * sizeof(float)) != 0)
    throw ShapeError("external parameter memory must be 64-byte aligned");
  if (params != nullptr && copy)
    std::memcpy(params, params_.get(), total_ * sizeof(float));
  else if (params_external_ != nullptr)
    std::memcpy(params_.get(), params_external_, total_ * sizeof(float));
  params_external_ = params;
}

float* ParamStore::point_params_at(float* params) {
  if (!finalized_) throw Error("ParamStore::point_params_at() needs finalize() first");
  if (params != nullptr &&
      reinterpret_cast<uintptr_t>(params) % (kAlignFloats * sizeof(float)) != 0)
    throw ShapeError("the parameters' memory must be 64-byte aligned");
  float* before = params_external_;
  params_external_ = params;
  return before;
}

}  // namespace vd

// Reverse-mode autograd: a tape of Nodes built as ops run (only when grad mode is
// on and an input needs a gradient). Each op's Node lives beside its forward in
// ops/<family>.cc and computes input gradients with ordinary (grad-off) ops, so
// the backward pass is stream-ordered like the forward.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace fd {

struct Edge {
  std::shared_ptr<Node> fn;  // null: this input needs no gradient
  int input_nr = 0;          // which output slot of fn the gradient belongs to
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grad_outputs[i] is dL/d(output i) (null if that output got no gradient);
  // returns dL/d(input j) for each next edge (null allowed).
  virtual std::vector<TensorPtr> apply(const std::vector<TensorPtr>& grad_outputs) = 0;
  // Frees saved activations (called as soon as backward has used them).
  virtual void release() {}

  std::vector<Edge> next;
  int num_outputs = 1;
  uint64_t sequence = 0;  // creation order: later nodes run first in backward
  bool released = false;
};

// Accumulates into a leaf's .grad (out of place, so a gradient tensor shared by
// two branches is never modified behind their back).
struct AccumulateGrad : Node {
  std::weak_ptr<TensorImpl> leaf;
  const char* name() const override { return "AccumulateGrad"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& grads) override;
};

// Grad mode (per JS thread).
bool grad_enabled();
void set_grad_enabled(bool enabled);
struct NoGradGuard {
  bool prev;
  NoGradGuard() : prev(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev); }
};

// True when an op on these inputs must be recorded.
bool any_requires_grad(std::initializer_list<const TensorPtr*> inputs);
bool any_requires_grad(const std::vector<TensorPtr>& inputs);

// Connects `node` to its inputs and its outputs. Inputs that need no gradient get
// null edges; outputs become non-leaf tensors produced by `node`.
void record(const std::shared_ptr<Node>& node, const std::vector<TensorPtr>& inputs,
            const std::vector<TensorPtr>& outputs);

// A saved activation: shares storage but carries no autograd links (no cycles).
TensorPtr save(const TensorPtr& t);

// Runs backward from `root` with upstream gradient `grad` (null: root must have
// one element, gradient 1). Gradients accumulate into leaves' .grad.
void backward(const TensorPtr& root, const TensorPtr& grad, bool retain_graph);

// The sum of gradient tensors (a + b as a new tensor), used to merge branches.
// (Set by the op layer at startup: the engine core knows no ops.)
using AddFn = TensorPtr (*)(const TensorPtr&, const TensorPtr&);
using CloneFn = TensorPtr (*)(const TensorPtr&);
void set_grad_ops(AddFn add, CloneFn clone);
TensorPtr grad_add(const TensorPtr& a, const TensorPtr& b);

}  // namespace fd

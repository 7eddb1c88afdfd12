#include "autograd.h"
#include "stream.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/runtime.h"
#endif

#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace fd {
namespace {

thread_local bool tls_grad_enabled = true;
std::atomic<uint64_t> g_sequence{1};
AddFn g_add = nullptr;
CloneFn g_clone = nullptr;

Edge edge_to(const TensorPtr& t) {
  if (t->grad_fn) return {t->grad_fn, t->output_nr};
  if (t->requires_grad) {
    auto acc = std::make_shared<AccumulateGrad>();
    acc->leaf = t;
    acc->sequence = 0;  // leaves run last
    return {acc, 0};
  }
  return {};
}

}  // namespace

bool grad_enabled() { return tls_grad_enabled; }
void set_grad_enabled(bool enabled) { tls_grad_enabled = enabled; }

bool any_requires_grad(std::initializer_list<const TensorPtr*> inputs) {
  if (!tls_grad_enabled) return false;
  for (const TensorPtr* t : inputs)
    if (*t && (*t)->needs_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<TensorPtr>& inputs) {
  if (!tls_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t && t->needs_grad()) return true;
  return false;
}

void record(const std::shared_ptr<Node>& node, const std::vector<TensorPtr>& inputs,
            const std::vector<TensorPtr>& outputs) {
  node->sequence = g_sequence.fetch_add(1);
  node->next.clear();
  for (const auto& in : inputs) node->next.push_back(in ? edge_to(in) : Edge{});
  node->num_outputs = static_cast<int>(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    outputs[i]->grad_fn = node;
    outputs[i]->output_nr = static_cast<int>(i);
  }
}

TensorPtr save(const TensorPtr& t) {
  if (!t) return nullptr;
  return alias(t, t->shape);
}

void set_grad_ops(AddFn add, CloneFn clone) {
  g_add = add;
  g_clone = clone;
}
TensorPtr grad_add(const TensorPtr& a, const TensorPtr& b) {
  if (!a) return b;
  if (!b) return a;
  return g_add(a, b);
}

std::vector<TensorPtr> AccumulateGrad::apply(const std::vector<TensorPtr>& grads) {
  auto t = leaf.lock();
  if (t && grads[0]) {
    FD_CHECK(grads[0]->shape == t->shape, ErrorCode::Internal, "backward: gradient shape ", shape_str(grads[0]->shape),
             " does not match its leaf ", shape_str(t->shape));
    t->grad = grad_add(t->grad, save(grads[0]));
  }
  return {};
}

void backward(const TensorPtr& root, const TensorPtr& grad, bool retain_graph) {
  FD_CHECK(root->needs_grad(), ErrorCode::NoGraph, "backward: the tensor ", shape_str(root->shape),
           " does not require grad and has no graph (did an input set requiresGrad?)");
  TensorPtr seed = grad;
  if (!seed) {
    FD_CHECK(root->numel() == 1, ErrorCode::Shape, "backward: a gradient must be given for a non-scalar tensor of shape ",
             shape_str(root->shape));
  } else {
    FD_CHECK(seed->shape == root->shape, ErrorCode::Shape, "backward: gradient shape ", shape_str(seed->shape),
             " does not match the tensor's ", shape_str(root->shape));
  }
  NoGradGuard no_grad;
  // A caller's gradient may end up as a leaf's .grad, which optimizers modify in
  // place (sanitizing): work on a copy.
  if (seed) seed = g_clone(seed);
  Edge start = edge_to(root);

  // Count, for every reachable node, how many edges feed it.
  std::unordered_map<Node*, int> dependencies;
  std::unordered_set<Node*> seen{start.fn.get()};
  std::vector<Node*> stack{start.fn.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    FD_CHECK(!n->released, ErrorCode::NoGraph, "backward: the graph through ", n->name(),
             " was already freed by an earlier backward (pass retainGraph: true to backward twice)");
    for (const Edge& e : n->next) {
      if (!e.fn) continue;
      dependencies[e.fn.get()] += 1;
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  auto cmp = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) { return a->sequence < b->sequence; };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(cmp)> ready(cmp);
  std::unordered_map<Node*, std::vector<TensorPtr>> buffers;
  buffers[start.fn.get()].resize(start.fn->num_outputs);
  if (!seed) {
    seed = empty(root->shape, root->device());
    TensorPtr s = seed;
    launch("backward", [s] {
      const Device dev = s->device();
      if (dev.type == DeviceType::CUDA) {
#if FASTDIFF_WITH_CUDA
        cuda::set_device(dev.index);
        cuda::fill(s->data(), 1, 1.0f);
#endif
        return;
      }
      s->data()[0] = 1.0f;
    });
  }
  buffers[start.fn.get()][start.input_nr] = seed;
  ready.push(start.fn);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    std::vector<TensorPtr> grads = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grads.resize(node->num_outputs);
    std::vector<TensorPtr> input_grads = node->apply(grads);
    grads.clear();
    if (!retain_graph) {
      node->release();
      if (dynamic_cast<AccumulateGrad*>(node.get()) == nullptr) node->released = true;
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      const Edge& e = node->next[i];
      if (!e.fn) continue;
      auto& buf = buffers[e.fn.get()];
      if (buf.empty()) buf.resize(e.fn->num_outputs);
      if (i < input_grads.size() && input_grads[i]) buf[e.input_nr] = grad_add(buf[e.input_nr], input_grads[i]);
      if (--dependencies[e.fn.get()] == 0) ready.push(e.fn);
    }
  }
}

}  // namespace fd

#include "train/sharded_adamw.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "core/device.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mambalm {

namespace {

// Every parameter starts at a multiple of 16 elements in its bucket and every rank's slice is
// a multiple of 16 long, so each piece an op sees is 64-byte aligned (the vectorised paths).
constexpr int64_t kAlign = 16;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Elements [begin, begin + n) of t, flattened.
Tensor piece(const Tensor& t, int64_t begin, int64_t n) { return t.reshape({t.numel()}).slice0(begin, begin + n); }

}  // namespace

ShardedAdamW::ShardedAdamW(ParamList& params, AdamWConfig cfg, dist::Communicator& comm, int64_t bucket_elements)
    : params_(params), cfg_(cfg), comm_(comm), device_(comm.device()) {
  check_adamw_config(cfg);
  check(bucket_elements > 0, "adamw", "bucket size must be positive");
  for (const ParamRef& p : params_) {
    check(p.grad && p.grad->defined(), "adamw", "parameter '" + p.name + "' has no gradient buffer");
    check(p.tensor->device() == device_, "adamw",
          "parameter '" + p.name + "' is not on the device of the " + comm.backend() + " communicator");
  }
  build_layout(bucket_elements);
  take_master_shards();
}

void ShardedAdamW::build_layout(int64_t bucket_elements) {
  const int64_t N = comm_.size(), r = comm_.rank();
  // Backward produces the last parameters' gradients first: buckets follow that order, one
  // open bucket per value dtype.
  std::vector<size_t> order(params_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::reverse(order.begin(), order.end());
  std::map<DType, size_t> open;
  for (size_t i : order) {
    const Tensor& v = *params_[i].tensor;
    auto it = open.find(v.dtype());
    if (it == open.end() || buckets_[it->second].size >= bucket_elements) {
      buckets_.push_back(Bucket{v.dtype(), 0, 0, {}, {}, {}, {}, {}, {}});
      it = open.insert_or_assign(v.dtype(), buckets_.size() - 1).first;
    }
    Bucket& b = buckets_[it->second];
    b.slots.push_back(Slot{i, b.size, v.numel()});
    b.size += round_up(v.numel(), kAlign);
  }
  bucket_of_.assign(params_.size(), 0);
  for (size_t k = 0; k < buckets_.size(); ++k)
    for (const Slot& s : buckets_[k].slots) bucket_of_[s.param] = k;
  int64_t total = 0;
  for (Bucket& b : buckets_) {
    b.size = round_up(b.size, N * kAlign);
    b.grad_offset = total;
    total += b.size;
  }

  // Gradients: one flat buffer; values: one per bucket. The current values move in.
  grads_ = zeros_on(device_, {total});
  for (Bucket& b : buckets_) {
    b.values = zeros_on(device_, {b.size}, b.dtype);
    for (const Slot& s : b.slots) {
      ParamRef& p = params_[s.param];
      Tensor value = b.values.slice0(s.offset, s.offset + s.numel).reshape(p.tensor->shape());
      copy_tensor(*p.tensor, value);
      *p.tensor = value;
      *p.grad = grads_.slice0(b.grad_offset + s.offset, b.grad_offset + s.offset + s.numel).reshape(p.shape);
    }
    // This rank's slice [r * shard, (r + 1) * shard) of the bucket, cut at parameter borders.
    const int64_t lo = r * shard(b), hi = lo + shard(b);
    for (const Slot& s : b.slots) {
      const int64_t first = std::max(lo, s.offset), end = std::min(hi, s.offset + s.numel);
      if (first < end) b.segments.push_back(Segment{s.param, first - lo, first - s.offset, end - first});
    }
    b.exp_avg = zeros_on(device_, {shard(b)});
    b.exp_avg_sq = zeros_on(device_, {shard(b)});
  }
}

// BF16 buckets: this rank's slice of the F32 masters, then the whole masters go.
void ShardedAdamW::take_master_shards() {
  for (Bucket& b : buckets_) {
    if (b.dtype == DType::F32) continue;
    b.master = zeros_on(device_, {shard(b)});
    for (const Segment& g : b.segments) {
      const ParamRef& p = params_[g.param];
      check(p.master && p.master->defined(), "adamw",
            "parameter '" + p.name + "' is " + dtype_name(b.dtype) + " without an F32 master");
      Tensor dst = b.master.slice0(g.in_shard, g.in_shard + g.numel);
      copy_tensor(piece(*p.master, g.in_param, g.numel), dst);
    }
  }
  release_masters();
}

Tensor ShardedAdamW::grad_slice(const Bucket& b) const {
  const int64_t first = b.grad_offset + comm_.rank() * shard(b);
  return grads_.slice0(first, first + shard(b));
}

Tensor ShardedAdamW::value_slice(const Bucket& b) const {
  const int64_t first = comm_.rank() * shard(b);
  return b.values.slice0(first, first + shard(b));
}

void ShardedAdamW::zero_grads() { ops::fill(grads_, 0.0f); }

void ShardedAdamW::start_reduction() {
  for (Bucket& b : buckets_) {
    b.pending = b.slots.size();
    b.reducing = false;
  }
}

void ShardedAdamW::grads_ready(size_t first, size_t end) {
  for (size_t i = first; i < end && i < params_.size(); ++i) {
    Bucket& b = buckets_[bucket_of_[i]];
    if (b.pending > 0 && --b.pending == 0) reduce(b);
  }
}

void ShardedAdamW::reduce(Bucket& b) {
  if (b.reducing) return;
  b.reducing = true;
  Tensor g = grads_.slice0(b.grad_offset, b.grad_offset + b.size);
  comm_.reduce_scatter_sum(g);
}

void ShardedAdamW::reduce_gradients() {
  for (Bucket& b : buckets_) reduce(b);  // those the hook did not start (or all, without it)
  comm_.wait(dist::collective_timeout());
  for (Bucket& b : buckets_) b.reducing = false;
}

double ShardedAdamW::grad_norm() {
  // One F64 per bucket on the device, read back once; padding holds zeros.
  Tensor sums = empty_on(device_, {static_cast<int64_t>(buckets_.size())}, DType::F64);
  for (size_t i = 0; i < buckets_.size(); ++i) {
    Tensor one = sums.slice0(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    ops::squared_norm(grad_slice(buckets_[i]), one);
  }
  const Tensor host = to_host(sums);
  double mine = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) mine += host.data<double>()[i];
  return std::sqrt(comm_.sum(mine));
}

void ShardedAdamW::check_finite_grads() {
  for (const Bucket& b : buckets_)
    for (const Segment& g : b.segments) {
      Tensor flag = empty_on(device_, {1}, DType::I32);
      ops::nonfinite_flag(grad_slice(b).slice0(g.in_shard, g.in_shard + g.numel), flag);
      if (to_host(flag).data<int32_t>()[0])
        fail("training", "gradient of '" + params_[g.param].name + "' holds a NaN or an infinity",
             "lower the learning rate or check the data; the step was not applied");
    }
  fail("training", "the gradient norm is not finite (the NaN or infinity lies in another rank's slice)",
       "lower the learning rate or check the data; the step was not applied");
}

void ShardedAdamW::step(double lr, double grad_scale) {
  ops::AdamWStep s = adamw_step_scalars(cfg_, ++t_, lr, grad_scale);
  for (Bucket& b : buckets_) {
    Tensor grads = grad_slice(b), values = value_slice(b);
    for (const Segment& g : b.segments) {
      const ParamRef& p = params_[g.param];
      s.shrink = adamw_shrink(cfg_, p, lr);
      const auto part = [&](const Tensor& t) { return t.slice0(g.in_shard, g.in_shard + g.numel); };
      Tensor grad = part(grads), m = part(b.exp_avg), v = part(b.exp_avg_sq), value = part(values);
      if (b.dtype == DType::F32) {
        ops::adamw_update(value, nullptr, grad, m, v, s);
      } else {
        Tensor master = part(b.master);
        ops::adamw_update(master, &value, grad, m, v, s);
      }
    }
    comm_.all_gather(b.values);
  }
  comm_.wait(dist::collective_timeout());
  // The gather wrote the other ranks' updates into the parameters (views of b.values) in place.
  for (Bucket& b : buckets_) b.values.mark_written();
}

NamedTensors ShardedAdamW::state_tensors() const {
  std::vector<Tensor> m(params_.size()), v(params_.size());
  for (const Bucket& b : buckets_) {
    for (auto [mine, whole_of] : {std::pair{&b.exp_avg, &m}, {&b.exp_avg_sq, &v}}) {
      Tensor whole = zeros_on(device_, {b.size});
      Tensor dst = whole.slice0(comm_.rank() * shard(b), (comm_.rank() + 1) * shard(b));
      copy_tensor(*mine, dst);
      comm_.all_gather(whole);
      comm_.wait(dist::collective_timeout());
      const Tensor host = to_device(whole, Device::CPU);
      for (const Slot& s : b.slots) (*whole_of)[s.param] = piece(host, s.offset, s.numel).reshape(params_[s.param].shape);
    }
  }
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i].name + ".exp_avg", m[i]);
    out.emplace_back(params_[i].name + ".exp_avg_sq", v[i]);
  }
  return out;
}

void ShardedAdamW::load_state(const NamedTensors& tensors, int64_t steps_taken) {
  std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
  for (Bucket& b : buckets_)
    for (const Segment& g : b.segments) {
      const ParamRef& p = params_[g.param];
      for (auto [suffix, mine] : {std::pair{".exp_avg", &b.exp_avg}, {".exp_avg_sq", &b.exp_avg_sq}}) {
        auto it = by_name.find(p.name + suffix);
        check(it != by_name.end(), "optimizer state", "missing tensor '" + p.name + suffix + "'");
        check(it->second.shape() == p.shape, "optimizer state",
              "tensor '" + p.name + suffix + "' has shape " + shape_str(it->second.shape()) + ", expected " + shape_str(p.shape));
        const Tensor host = it->second.dtype() == DType::F32 ? it->second : it->second.to(DType::F32);
        Tensor dst = mine->slice0(g.in_shard, g.in_shard + g.numel);
        copy_tensor(piece(host, g.in_param, g.numel), dst);
      }
    }
  t_ = steps_taken;
}

void ShardedAdamW::gather_masters() {
  for (Bucket& b : buckets_) {
    if (b.dtype == DType::F32) continue;
    Tensor whole = zeros_on(device_, {b.size});
    Tensor dst = whole.slice0(comm_.rank() * shard(b), (comm_.rank() + 1) * shard(b));
    copy_tensor(b.master, dst);
    comm_.all_gather(whole);
    for (const Slot& s : b.slots) *params_[s.param].master = piece(whole, s.offset, s.numel).reshape(params_[s.param].shape);
  }
  comm_.wait(dist::collective_timeout());
}

void ShardedAdamW::release_masters() {
  for (const Bucket& b : buckets_)
    if (b.dtype != DType::F32)
      for (const Slot& s : b.slots) *params_[s.param].master = Tensor();
}

int64_t ShardedAdamW::shard_bytes() const {
  int64_t bytes = 0;
  for (const Bucket& b : buckets_) bytes += shard(b) * 4 * (b.dtype == DType::F32 ? 2 : 3);
  return bytes;
}

int64_t ShardedAdamW::unsharded_bytes() const {
  int64_t bytes = 0;
  for (const Bucket& b : buckets_)
    for (const Slot& s : b.slots) bytes += s.numel * 4 * (b.dtype == DType::F32 ? 2 : 3);
  return bytes;
}

int64_t ShardedAdamW::buffer_bytes() const {
  int64_t bytes = static_cast<int64_t>(grads_.nbytes());
  for (const Bucket& b : buckets_) bytes += static_cast<int64_t>(b.values.nbytes());
  return bytes;
}

}  // namespace mambalm

// AdamW for data-parallel training with its state sharded across the ranks (ZeRO stage 1,
// Megatron's "distributed optimizer"):
//   - every parameter's gradient is a view into one flat F32 buffer, cut into buckets (in
//     backward order, each a single value dtype, padded to a multiple of the world size);
//   - reduce_gradients(): a reduce-scatter per bucket leaves each rank the summed gradients of
//     its 1/N slice of the bucket;
//   - step(): each rank updates its slice (F32 master, Adam moments: 12 bytes per parameter,
//     divided by N), writes the value the ops read (BF16 rounding or the F32 value itself), and
//     an all-gather per bucket gives every rank every updated value.
// The parameters' values are views into per-bucket flat buffers too, so the all-gather lands
// in place. With AdamW's elementwise update, the result equals unsharded AdamW on the summed
// gradients: only the summation order of the reduction differs.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "train/adamw.h"

namespace mambalm {

class ShardedAdamW final : public Optimizer {
 public:
  // Lays out `params` (their values, F32 masters and gradients, which must exist: call after
  // Model::prepare_training) and takes this rank's shard of the masters. The full masters are
  // released: parameters keep only the value the ops read, until gather_masters().
  ShardedAdamW(ParamList& params, AdamWConfig cfg, dist::Communicator& comm, int64_t bucket_elements = int64_t{1} << 25);

  void zero_grads();
  // Overlap with backward: before the last micro-batch of a step, start_reduction(); then
  // grads_ready(first, end) for each range of parameters whose gradients are final (the model's
  // grads-ready hook, Model::set_grads_ready_hook) starts the reduce-scatter of every bucket that
  // has become complete, while backward goes on.
  void start_reduction();
  void grads_ready(size_t first, size_t end);
  // Sums the gradients over ranks into each rank's slice: starts the buckets not started yet and
  // waits for all (call after the last micro-batch).
  void reduce_gradients();
  // sqrt of the sum of squares of the summed gradients (collective); NaN or inf when any is.
  double grad_norm();
  // Throws naming a parameter of this rank's slice whose summed gradient holds a NaN or inf.
  void check_finite_grads();

  void step(double lr, double grad_scale = 1.0) override;
  int64_t steps_taken() const override { return t_; }
  NamedTensors state_tensors() const override;  // collective
  void load_state(const NamedTensors& tensors, int64_t steps_taken) override;

  // Every F32 master, whole, back in ParamRef::master (collective), so that Model::save writes
  // the exact weights; release_masters() frees them again.
  void gather_masters();
  void release_masters();

  // Bytes of optimizer state this rank holds (masters + moments of its slice) and what one
  // unsharded optimizer would hold.
  int64_t shard_bytes() const;
  int64_t unsharded_bytes() const;
  // Bytes of the flat gradient and value buffers (whole on every rank).
  int64_t buffer_bytes() const;

 private:
  struct Slot {
    size_t param;    // index into params_
    int64_t offset;  // first element in the bucket
    int64_t numel;
  };
  // A stretch of this rank's slice that belongs to one parameter.
  struct Segment {
    size_t param;
    int64_t in_shard;  // first element within the rank's slice
    int64_t in_param;  // the same element's index within the parameter
    int64_t numel;
  };
  struct Bucket {
    DType dtype;          // of the values the ops read: BF16 (with F32 masters) or F32
    int64_t grad_offset;  // first element in grads_
    int64_t size;         // elements, a multiple of world size * kAlign
    std::vector<Slot> slots;
    std::vector<Segment> segments;
    Tensor values;                 // [size], dtype: what the parameters' tensors view
    Tensor master, exp_avg, exp_avg_sq;  // [size / N] F32, this rank's slice (master: BF16 buckets only)
    size_t pending = 0;    // parameters whose gradients are not final yet (this step)
    bool reducing = false;  // its reduce-scatter has been queued (this step)
  };

  int64_t shard(const Bucket& b) const { return b.size / comm_.size(); }  // elements per rank
  Tensor grad_slice(const Bucket& b) const;   // [shard] this rank's summed gradients of the bucket
  Tensor value_slice(const Bucket& b) const;  // [shard] this rank's slice of the values
  void build_layout(int64_t bucket_elements);
  void take_master_shards();
  void reduce(Bucket& b);

  ParamList& params_;
  AdamWConfig cfg_;
  dist::Communicator& comm_;
  Device device_;
  Tensor grads_;  // [sum of bucket sizes] F32
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // params_ index -> buckets_ index
  int64_t t_ = 0;
};

}  // namespace mambalm

// Reshape and Flatten: free views of plain memory, or a reorder to plain.
#include <cstring>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// Reshape / Flatten: a free view when the input is plain row-major, else a reorder to plain.
class ReshapeLayer : public Layer {
 public:
  ReshapeLayer(Ctx& c, const ResolvedLayer& L, int64_t batch) : c_(c), L_(L), batch_(batch) {}

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    in_ = in;
    d_in_ = d_in;
    // Activations keep their data type (bf16 in bf16 training) through the view.
    const dt type = in.get_desc().get_data_type();
    const md_t plain_in = plain_md(batch_, L_.in, type), plain_out = plain_md(batch_, L_.out, type);
    if (in.get_desc() == plain_in) {
      out = memory(plain_out, c.eng, in.get_data_handle());
      d_out = memory(plain_out, c.eng, d_in.get_data_handle());
    } else {
      memory tmp(plain_in, c.eng), dtmp(plain_in, c.eng);
      fwd_ = make_reorder(c, in, tmp);
      bwd_ = make_reorder(c, dtmp, d_in);
      out = memory(plain_out, c.eng, tmp.get_data_handle());
      d_out = memory(plain_out, c.eng, dtmp.get_data_handle());
    }
  }
  void forward(bool, Counter) override {
    if (fwd_) fwd_->run(c_.strm);
  }
  void backward(bool, int) override {
    if (bwd_) bwd_->run(c_.strm);
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  int64_t batch_;
  std::optional<Reorder> fwd_, bwd_;
};

}  // namespace

std::unique_ptr<Layer> make_reshape_layer(Ctx& c, const ResolvedLayer& L, int64_t batch) {
  return std::make_unique<ReshapeLayer>(c, L, batch);
}

}  // namespace dcgan::cpu

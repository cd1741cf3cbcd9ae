//! Adam for the fine-tune, in one pass over memory on burn-flex.
//!
//! burn's `Adam` composes tensor ops: about ten elementwise passes per parameter, each
//! allocating its result. In a heads-only step that was 42% of the time natively (the two aux
//! heads' fc1 layers hold 4.2M of the 4.3M trained parameters). Here, when the parameter, its
//! gradient and its moments are burn-flex tensors, one loop reads the gradient and updates the
//! moments (in place when nothing else holds them) and the parameter, spread over the rayon
//! pool. The arithmetic is burn's, operation for operation, so the result is the same to the
//! last bit (tested against burn's `Adam` below). Elsewhere (WebGPU, autodiff) burn's `Adam`
//! runs unchanged, and the state is burn's `AdamState` either way.

use burn::optim::{Adam, AdamConfig, AdamState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

/// burn's defaults (`AdamConfig::new()`), which the fine-tune has always used.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// The fine-tune's Adam: fused on burn-flex, burn's own elsewhere.
pub fn optimizer() -> ModuleOptimizer {
    ModuleOptimizer::from(FusedAdam {
        tensor_ops: config().build(),
    })
}

fn config() -> AdamConfig {
    AdamConfig::new()
        .with_beta_1(BETA_1)
        .with_beta_2(BETA_2)
        .with_epsilon(EPSILON)
}

#[derive(Clone)]
pub struct FusedAdam {
    /// burn's Adam with the same settings, for tensors that are not on burn-flex.
    tensor_ops: Adam,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        #[cfg(cpu_kernels)]
        if fused::applies(&tensor, &grad, state.as_ref()) {
            let (tensor, state) = fused::step(lr as f32, tensor, grad, state);
            return (tensor, Some(state));
        }
        self.tensor_ops.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(cpu_kernels)]
mod fused {
    use super::{BETA_1, BETA_2, EPSILON};
    use crate::model::kernels::flex_inference;
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::optim::{AdamState, AdaptiveMomentumState};
    use burn::tensor::{DType, Tensor};

    /// Elements per task on the rayon pool.
    #[cfg(thread_pool)]
    const CHUNK: usize = 1 << 14;

    /// Whether every tensor of the step is an f32 burn-flex tensor without autodiff (and the
    /// state has no AMSGrad maximum, which this Adam never keeps).
    pub fn applies<const D: usize>(
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&AdamState<D>>,
    ) -> bool {
        let f32_flex = |t: &Tensor<D>| flex_inference(t) && t.dtype() == DType::F32;
        f32_flex(tensor)
            && f32_flex(grad)
            && tensor.shape() == grad.shape()
            && state.is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none()
                    && f32_flex(&m.moment_1)
                    && f32_flex(&m.moment_2)
                    && m.moment_1.shape() == tensor.shape()
                    && m.moment_2.shape() == tensor.shape()
            })
    }

    /// The primitive, contiguous from the start of its buffer and covering all of it, so that
    /// its storage is the tensor's elements in order.
    fn whole<const D: usize>(t: Tensor<D>) -> FlexTensor {
        let t = t
            .try_into_primitive::<Flex>()
            .expect("checked by applies()");
        match t.layout().contiguous_offsets() {
            Some((0, end)) if end * 4 == t.bytes().len() => t,
            _ => t.to_contiguous(),
        }
    }

    /// Fused steps taken (tests check the fine-tune takes this path).
    #[cfg(test)]
    pub static TAKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// One Adam step: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, then
    /// `p ← p − lr·(m·c)/(√v + ε·√(1−β₂ᵗ))` with `c = √(1−β₂ᵗ)/(1−β₁ᵗ)`, as burn writes it.
    /// The first step sets `m = (1−β₁)g` and `v = (1−β₂)g²`, as burn does (not from zeros,
    /// which would turn a −0 into +0).
    pub fn step<const D: usize>(
        lr: f32,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, AdamState<D>) {
        #[cfg(test)]
        TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = state.is_none();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                whole(s.momentum.moment_1),
                whole(s.momentum.moment_2),
            ),
            None => {
                let fresh = || FlexTensor::zeros(tensor.shape(), DType::F32);
                (1, fresh(), fresh())
            }
        };
        let (mut p, g, mut m, mut v) = (whole(tensor), whole(grad), m, v);
        let t = time as i32;
        let bc2 = (1.0 - BETA_2.powi(t)).sqrt();
        let factor = bc2 / (1.0 - BETA_1.powi(t));
        let eps = EPSILON * bc2;
        let (f1, f2) = (1.0 - BETA_1, 1.0 - BETA_2);
        // Copy-on-write: the parameter is still held by the model being replaced (and by the
        // copy kept to undo a failed step), so it is copied before the pass; the moments are
        // the optimiser's own and are written in place.
        let kernel = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                (*m, *v) = if first {
                    (g * f1, g * g * f2)
                } else {
                    (*m * BETA_1 + g * f1, *v * BETA_2 + g * g * f2)
                };
                *p -= (*m * factor) / (v.sqrt() + eps) * lr;
            }
        };
        {
            let (ps, ms, vs, gs) = (
                p.storage_mut::<f32>(),
                m.storage_mut::<f32>(),
                v.storage_mut::<f32>(),
                g.storage::<f32>(),
            );
            debug_assert!(
                ps.len() == gs.len() && ms.len() == gs.len() && vs.len() == gs.len(),
                "whole() gives every tensor's elements only"
            );
            #[cfg(thread_pool)]
            {
                use rayon::prelude::*;
                ps.par_chunks_mut(CHUNK)
                    .zip(ms.par_chunks_mut(CHUNK))
                    .zip(vs.par_chunks_mut(CHUNK))
                    .zip(gs.par_chunks(CHUNK))
                    .for_each(|(((p, m), v), g)| kernel(p, m, v, g));
            }
            #[cfg(not(thread_pool))]
            kernel(ps, ms, vs, gs);
        }
        let back = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        (
            back(p),
            AdamState::new(AdaptiveMomentumState::new(time, back(m), back(v))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64 as Rng;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;
    use std::sync::atomic::Ordering;

    fn random(rng: &mut Rng, shape: [usize; 2], scale: f32, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(rng.uniform(shape[0] * shape[1], scale), shape),
            device,
        )
    }

    fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn same_bits<const D: usize>(x: &Tensor<D>, y: &Tensor<D>, what: &str) {
        let (x, y) = (values(x), values(y));
        let diff = x
            .iter()
            .zip(&y)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(
            diff,
            0,
            "{what} differs from burn's Adam in {diff} of {} elements",
            x.len()
        );
    }

    /// Fused and burn's Adam (its defaults, `AdamConfig::new()`, which the fine-tune used
    /// before) from the same start, over steps with changing gradients: the same parameters
    /// and moments to the last bit, and the parameters really move. The first gradient has
    /// zeros of both signs (burn's first moment keeps a −0); one later gradient is all zero and
    /// one is a transposed view (copied to contiguous first). The parameter is shared with a
    /// kept copy, as in the fine-tune, which must not change.
    #[test]
    fn fused_adam_is_burns_adam() {
        let device = Device::flex();
        let mut rng = Rng::new(7);
        let fused = FusedAdam {
            tensor_ops: config().build(),
        };
        let reference = AdamConfig::new().build();
        // Larger than one rayon chunk, and not a multiple of it.
        let shape = [37, 1000];
        let start = random(&mut rng, shape, 0.5, &device);
        let (mut a, mut b) = (start.clone(), start);
        let (mut sa, mut sb) = (None, None);
        for step in 0..6 {
            let g = match step {
                0 => {
                    let mut g = rng.uniform(shape[0] * shape[1], 0.1);
                    g.iter_mut().step_by(7).for_each(|x| *x = -0.0);
                    g.iter_mut().skip(3).step_by(11).for_each(|x| *x = 0.0);
                    Tensor::from_data(TensorData::new(g, shape), &device)
                }
                3 => Tensor::zeros(shape, &device),
                4 => random(&mut rng, [shape[1], shape[0]], 0.3, &device).transpose(),
                _ => random(&mut rng, shape, 0.1 * (step + 1) as f32, &device),
            };
            assert!(
                fused::applies(&a, &g, sa.as_ref()),
                "step {step}: flex tensors take the fused path"
            );
            let kept = a.clone();
            let before = values(&a);
            let (na, nsa) = fused.step(1e-2, a, g.clone(), sa);
            let (nb, nsb) = reference.step(1e-2, b, g, sb);
            same_bits(&na, &nb, &format!("step {step}: parameter"));
            let (ma, mb) = (
                &nsa.as_ref().unwrap().momentum,
                &nsb.as_ref().unwrap().momentum,
            );
            assert_eq!(ma.time, mb.time);
            same_bits(
                &ma.moment_1,
                &mb.moment_1,
                &format!("step {step}: first moment"),
            );
            same_bits(
                &ma.moment_2,
                &mb.moment_2,
                &format!("step {step}: second moment"),
            );
            let moved: f32 = (na.clone() - kept.clone()).abs().max().into_scalar();
            assert!(moved > 1e-3, "step {step}: parameters moved only {moved}");
            assert!(
                values(&kept) == before,
                "step {step}: the kept copy was written through"
            );
            (a, b, sa, sb) = (na, nb, nsa, nsb);
        }
    }

    /// The way the fine-tune calls it: `optimizer()` on a module trained under autodiff (the
    /// optimiser sees the plain tensors) takes the fused path and ends where burn's
    /// `AdamConfig::new().init()` does.
    #[test]
    fn the_module_optimizer_takes_the_fused_path() {
        let device = Device::flex().autodiff();
        let mut rng = Rng::new(3);
        let layer: Linear = LinearConfig::new(300, 200).init(&device);
        let initial = values(&layer.weight.val());
        let (mut a, mut b) = (layer.clone(), layer);
        let (mut fused, mut reference) = (optimizer(), AdamConfig::new().init());
        let taken = fused::TAKEN.load(Ordering::Relaxed);
        for step in 0..3 {
            let x = random(&mut rng, [8, 300], 1.0, &device);
            let grads = |m: &Linear| {
                let loss = m.forward(x.clone()).powi_scalar(2).mean();
                GradientsParams::from_grads(loss.backward(), m)
            };
            let (ga, gb) = (grads(&a), grads(&b));
            a = fused.step(1e-2, a, ga);
            b = reference.step(1e-2, b, gb);
            same_bits(
                &a.weight.val(),
                &b.weight.val(),
                &format!("step {step}: weight"),
            );
            same_bits(
                &a.bias.as_ref().unwrap().val(),
                &b.bias.as_ref().unwrap().val(),
                &format!("step {step}: bias"),
            );
        }
        // Weight and bias, three steps (other tests may add theirs meanwhile).
        assert!(
            fused::TAKEN.load(Ordering::Relaxed) >= taken + 6,
            "the fine-tune's optimiser did not take the fused path"
        );
        assert!(
            values(&a.weight.val()) != initial,
            "the steps left the weights as they were"
        );
    }

    /// Under autodiff (not burn-flex without autodiff) the fused path steps aside.
    #[test]
    fn fused_adam_only_on_plain_flex() {
        let device = Device::flex().autodiff();
        let t = Tensor::<2>::ones([2, 3], &device);
        assert!(!fused::applies(&t, &t, None));
    }
}

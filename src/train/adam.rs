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
    ModuleOptimizer::from(FusedAdam { tensor_ops: config().build() })
}

fn config() -> AdamConfig {
    AdamConfig::new().with_beta_1(BETA_1).with_beta_2(BETA_2).with_epsilon(EPSILON)
}

#[derive(Clone)]
pub struct FusedAdam {
    /// burn's Adam with the same settings, for tensors that are not on burn-flex.
    tensor_ops: Adam,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(&self, lr: LearningRate, tensor: Tensor<D>, grad: Tensor<D>, state: Option<AdamState<D>>) -> (Tensor<D>, Option<AdamState<D>>) {
        #[cfg(any(not(target_family = "wasm"), feature = "engine-cpu"))]
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

#[cfg(any(not(target_family = "wasm"), feature = "engine-cpu"))]
mod fused {
    use super::{BETA_1, BETA_2, EPSILON};
    use crate::model::kernels::flex_inference;
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::optim::{AdamState, AdaptiveMomentumState};
    use burn::tensor::{DType, Tensor};

    /// Elements per task on the rayon pool.
    const CHUNK: usize = 1 << 14;

    /// Whether every tensor of the step is an f32 burn-flex tensor without autodiff (and the
    /// state has no AMSGrad maximum, which this Adam never keeps).
    pub fn applies<const D: usize>(tensor: &Tensor<D>, grad: &Tensor<D>, state: Option<&AdamState<D>>) -> bool {
        let f32_flex = |t: &Tensor<D>| flex_inference(t) && t.dtype() == DType::F32;
        f32_flex(tensor)
            && f32_flex(grad)
            && tensor.shape() == grad.shape()
            && state.is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none() && f32_flex(&m.moment_1) && f32_flex(&m.moment_2) && m.moment_1.shape() == tensor.shape() && m.moment_2.shape() == tensor.shape()
            })
    }

    /// The primitive, contiguous from the start of its buffer and covering all of it, so that
    /// its storage is the tensor's elements in order.
    fn whole<const D: usize>(t: Tensor<D>) -> FlexTensor {
        let t = t.try_into_primitive::<Flex>().expect("checked by applies()");
        match t.layout().contiguous_offsets() {
            Some((0, end)) if end * 4 == t.bytes().len() => t,
            _ => t.to_contiguous(),
        }
    }

    /// One Adam step: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, then
    /// `p ← p − lr·(m·c)/(√v + ε·√(1−β₂ᵗ))` with `c = √(1−β₂ᵗ)/(1−β₁ᵗ)`, as burn writes it.
    /// The moments start at zero, which gives burn's first step exactly.
    pub fn step<const D: usize>(lr: f32, tensor: Tensor<D>, grad: Tensor<D>, state: Option<AdamState<D>>) -> (Tensor<D>, AdamState<D>) {
        let (time, m, v) = match state {
            Some(s) => (s.momentum.time + 1, whole(s.momentum.moment_1), whole(s.momentum.moment_2)),
            None => {
                let zeros = || whole(Tensor::<D>::zeros(tensor.shape(), &tensor.device()));
                (1, zeros(), zeros())
            }
        };
        let (mut p, g, mut m, mut v) = (whole(tensor), whole(grad), m, v);
        let t = time as i32;
        let bc2 = (1.0 - BETA_2.powi(t)).sqrt();
        let factor = bc2 / (1.0 - BETA_1.powi(t));
        let eps = EPSILON * bc2;
        let (f1, f2) = (1.0 - BETA_1, 1.0 - BETA_2);
        // Copy-on-write: the parameter is still held by the model being replaced (and by the
        // copy kept to undo a failed step), so it is copied once; the moments are the
        // optimiser's own and are written in place.
        let kernel = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = *m * BETA_1 + g * f1;
                *v = *v * BETA_2 + g * g * f2;
                *p -= (*m * factor) / (v.sqrt() + eps) * lr;
            }
        };
        {
            let (ps, ms, vs, gs) = (p.storage_mut::<f32>(), m.storage_mut::<f32>(), v.storage_mut::<f32>(), g.storage::<f32>());
            #[cfg(any(not(target_family = "wasm"), feature = "engine-threads"))]
            {
                use rayon::prelude::*;
                ps.par_chunks_mut(CHUNK)
                    .zip(ms.par_chunks_mut(CHUNK))
                    .zip(vs.par_chunks_mut(CHUNK))
                    .zip(gs.par_chunks(CHUNK))
                    .for_each(|(((p, m), v), g)| kernel(p, m, v, g));
            }
            #[cfg(not(any(not(target_family = "wasm"), feature = "engine-threads")))]
            kernel(ps, ms, vs, gs);
        }
        let back = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        (back(p), AdamState::new(AdaptiveMomentumState::new(time, back(m), back(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64 as Rng;
    use burn::tensor::TensorData;

    fn random(rng: &mut Rng, shape: [usize; 2], scale: f32, device: &Device) -> Tensor<2> {
        let data = rng.uniform(shape[0] * shape[1], scale);
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    /// Fused and burn's Adam from the same start, over steps with changing gradients (and one
    /// all-zero gradient): the same parameters and moments to the last bit, and the parameters
    /// really move. The parameter is shared with a kept copy, as in the fine-tune.
    #[test]
    fn fused_adam_is_burns_adam() {
        let device = Device::flex();
        let mut rng = Rng::new(7);
        let fused = FusedAdam { tensor_ops: config().build() };
        let reference = config().build();
        // Larger than one rayon chunk, and not a multiple of it.
        let shape = [37, 1000];
        let start = random(&mut rng, shape, 0.5, &device);
        let (mut a, mut b) = (start.clone(), start.clone());
        let (mut sa, mut sb) = (None, None);
        for step in 0..6 {
            assert!(fused::applies(&a, &a, sa.as_ref()), "flex tensors take the fused path");
            let g = if step == 3 { Tensor::zeros(shape, &device) } else { random(&mut rng, shape, 0.1 * (step + 1) as f32, &device) };
            let kept = a.clone();
            let before = a.to_data().try_to_vec::<f32>().unwrap();
            let (na, nsa) = fused.step(1e-2, a, g.clone(), sa);
            let (nb, nsb) = reference.step(1e-2, b, g, sb);
            let same = |x: &Tensor<2>, y: &Tensor<2>, what: &str| {
                let (x, y) = (x.to_data().try_to_vec::<f32>().unwrap(), y.to_data().try_to_vec::<f32>().unwrap());
                let diff = x.iter().zip(&y).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
                assert_eq!(diff, 0, "step {step}: {what} differs from burn's Adam in {diff} of {} elements", x.len());
            };
            same(&na, &nb, "parameter");
            let (ma, mb) = (&nsa.as_ref().unwrap().momentum, &nsb.as_ref().unwrap().momentum);
            assert_eq!(ma.time, mb.time);
            same(&ma.moment_1, &mb.moment_1, "first moment");
            same(&ma.moment_2, &mb.moment_2, "second moment");
            // The copy kept to undo a step is untouched, and the step moved the parameters.
            let moved: f32 = (na.clone() - kept.clone()).abs().max().into_scalar();
            assert!(moved > 1e-3, "step {step}: parameters moved only {moved}");
            assert!(kept.to_data().try_to_vec::<f32>().unwrap() == before, "step {step}: the kept copy was written through");
            (a, b, sa, sb) = (na, nb, nsa, nsb);
        }
    }

    /// Under autodiff (not burn-flex without autodiff) the fused path steps aside.
    #[test]
    fn fused_adam_only_on_plain_flex() {
        let device = Device::flex().autodiff();
        let t = Tensor::<2>::ones([2, 3], &device);
        assert!(!fused::applies(&t, &t, None));
    }
}

//! Optimisers with PyTorch's exact update rules, for the optimisation-based baselines.

pub mod adam;
pub mod lbfgs;

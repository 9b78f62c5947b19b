pub mod cluster {}

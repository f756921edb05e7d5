//! krmx-native: the Krmx realtime multi-user protocol as a library.
pub mod proto;

//! A first end-to-end check of the test support: a UDP exchange.

mod common;

use common::*;

#[test]
fn udp_exchange() {
    let h = Harness::default();
    let out = udp("10.0.0.1", 1000, "10.0.0.2", 53);
    let back = udp("10.0.0.2", 53, "10.0.0.1", 1000);
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(h.state(&back), "est|rpl|trk");
    assert_eq!(h.state(&out), "est|trk");
    assert_eq!(h.timeout_of(&out), Some(30));
    let e = h.entry(&back).unwrap();
    assert_eq!(e.counters.packets, [3, 1]);
}

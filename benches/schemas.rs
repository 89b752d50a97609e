//! Session schemas for the benchmarks (generated: a counter plus N-1 strings).
#![allow(dead_code, clippy::pedantic)]

use session_runtime::{SessionData, TypedSession};

/// A session of 1 field: a counter and 0 strings of 100 bytes.
#[derive(SessionData)]
pub struct S1 {
    pub counter: u64,
}

/// Sets every string of a `S1` to 100 bytes.
pub fn fill_s1(_s: &mut TypedSession<S1>) {}

/// A session of 21 fields: a counter and 20 strings of 100 bytes.
#[derive(SessionData)]
pub struct S21 {
    pub counter: u64,
    s001: String,
    s002: String,
    s003: String,
    s004: String,
    s005: String,
    s006: String,
    s007: String,
    s008: String,
    s009: String,
    s010: String,
    s011: String,
    s012: String,
    s013: String,
    s014: String,
    s015: String,
    s016: String,
    s017: String,
    s018: String,
    s019: String,
    s020: String,
}

/// Sets every string of a `S21` to 100 bytes.
pub fn fill_s21(s: &mut TypedSession<S21>) {
    let value = || "x".repeat(100);
    s.set_s001(value());
    s.set_s002(value());
    s.set_s003(value());
    s.set_s004(value());
    s.set_s005(value());
    s.set_s006(value());
    s.set_s007(value());
    s.set_s008(value());
    s.set_s009(value());
    s.set_s010(value());
    s.set_s011(value());
    s.set_s012(value());
    s.set_s013(value());
    s.set_s014(value());
    s.set_s015(value());
    s.set_s016(value());
    s.set_s017(value());
    s.set_s018(value());
    s.set_s019(value());
    s.set_s020(value());
}

/// A session of 200 fields: a counter and 199 strings of 100 bytes.
#[derive(SessionData)]
pub struct S200 {
    pub counter: u64,
    s001: String,
    s002: String,
    s003: String,
    s004: String,
    s005: String,
    s006: String,
    s007: String,
    s008: String,
    s009: String,
    s010: String,
    s011: String,
    s012: String,
    s013: String,
    s014: String,
    s015: String,
    s016: String,
    s017: String,
    s018: String,
    s019: String,
    s020: String,
    s021: String,
    s022: String,
    s023: String,
    s024: String,
    s025: String,
    s026: String,
    s027: String,
    s028: String,
    s029: String,
    s030: String,
    s031: String,
    s032: String,
    s033: String,
    s034: String,
    s035: String,
    s036: String,
    s037: String,
    s038: String,
    s039: String,
    s040: String,
    s041: String,
    s042: String,
    s043: String,
    s044: String,
    s045: String,
    s046: String,
    s047: String,
    s048: String,
    s049: String,
    s050: String,
    s051: String,
    s052: String,
    s053: String,
    s054: String,
    s055: String,
    s056: String,
    s057: String,
    s058: String,
    s059: String,
    s060: String,
    s061: String,
    s062: String,
    s063: String,
    s064: String,
    s065: String,
    s066: String,
    s067: String,
    s068: String,
    s069: String,
    s070: String,
    s071: String,
    s072: String,
    s073: String,
    s074: String,
    s075: String,
    s076: String,
    s077: String,
    s078: String,
    s079: String,
    s080: String,
    s081: String,
    s082: String,
    s083: String,
    s084: String,
    s085: String,
    s086: String,
    s087: String,
    s088: String,
    s089: String,
    s090: String,
    s091: String,
    s092: String,
    s093: String,
    s094: String,
    s095: String,
    s096: String,
    s097: String,
    s098: String,
    s099: String,
    s100: String,
    s101: String,
    s102: String,
    s103: String,
    s104: String,
    s105: String,
    s106: String,
    s107: String,
    s108: String,
    s109: String,
    s110: String,
    s111: String,
    s112: String,
    s113: String,
    s114: String,
    s115: String,
    s116: String,
    s117: String,
    s118: String,
    s119: String,
    s120: String,
    s121: String,
    s122: String,
    s123: String,
    s124: String,
    s125: String,
    s126: String,
    s127: String,
    s128: String,
    s129: String,
    s130: String,
    s131: String,
    s132: String,
    s133: String,
    s134: String,
    s135: String,
    s136: String,
    s137: String,
    s138: String,
    s139: String,
    s140: String,
    s141: String,
    s142: String,
    s143: String,
    s144: String,
    s145: String,
    s146: String,
    s147: String,
    s148: String,
    s149: String,
    s150: String,
    s151: String,
    s152: String,
    s153: String,
    s154: String,
    s155: String,
    s156: String,
    s157: String,
    s158: String,
    s159: String,
    s160: String,
    s161: String,
    s162: String,
    s163: String,
    s164: String,
    s165: String,
    s166: String,
    s167: String,
    s168: String,
    s169: String,
    s170: String,
    s171: String,
    s172: String,
    s173: String,
    s174: String,
    s175: String,
    s176: String,
    s177: String,
    s178: String,
    s179: String,
    s180: String,
    s181: String,
    s182: String,
    s183: String,
    s184: String,
    s185: String,
    s186: String,
    s187: String,
    s188: String,
    s189: String,
    s190: String,
    s191: String,
    s192: String,
    s193: String,
    s194: String,
    s195: String,
    s196: String,
    s197: String,
    s198: String,
    s199: String,
}

/// Sets every string of a `S200` to 100 bytes.
pub fn fill_s200(s: &mut TypedSession<S200>) {
    let value = || "x".repeat(100);
    s.set_s001(value());
    s.set_s002(value());
    s.set_s003(value());
    s.set_s004(value());
    s.set_s005(value());
    s.set_s006(value());
    s.set_s007(value());
    s.set_s008(value());
    s.set_s009(value());
    s.set_s010(value());
    s.set_s011(value());
    s.set_s012(value());
    s.set_s013(value());
    s.set_s014(value());
    s.set_s015(value());
    s.set_s016(value());
    s.set_s017(value());
    s.set_s018(value());
    s.set_s019(value());
    s.set_s020(value());
    s.set_s021(value());
    s.set_s022(value());
    s.set_s023(value());
    s.set_s024(value());
    s.set_s025(value());
    s.set_s026(value());
    s.set_s027(value());
    s.set_s028(value());
    s.set_s029(value());
    s.set_s030(value());
    s.set_s031(value());
    s.set_s032(value());
    s.set_s033(value());
    s.set_s034(value());
    s.set_s035(value());
    s.set_s036(value());
    s.set_s037(value());
    s.set_s038(value());
    s.set_s039(value());
    s.set_s040(value());
    s.set_s041(value());
    s.set_s042(value());
    s.set_s043(value());
    s.set_s044(value());
    s.set_s045(value());
    s.set_s046(value());
    s.set_s047(value());
    s.set_s048(value());
    s.set_s049(value());
    s.set_s050(value());
    s.set_s051(value());
    s.set_s052(value());
    s.set_s053(value());
    s.set_s054(value());
    s.set_s055(value());
    s.set_s056(value());
    s.set_s057(value());
    s.set_s058(value());
    s.set_s059(value());
    s.set_s060(value());
    s.set_s061(value());
    s.set_s062(value());
    s.set_s063(value());
    s.set_s064(value());
    s.set_s065(value());
    s.set_s066(value());
    s.set_s067(value());
    s.set_s068(value());
    s.set_s069(value());
    s.set_s070(value());
    s.set_s071(value());
    s.set_s072(value());
    s.set_s073(value());
    s.set_s074(value());
    s.set_s075(value());
    s.set_s076(value());
    s.set_s077(value());
    s.set_s078(value());
    s.set_s079(value());
    s.set_s080(value());
    s.set_s081(value());
    s.set_s082(value());
    s.set_s083(value());
    s.set_s084(value());
    s.set_s085(value());
    s.set_s086(value());
    s.set_s087(value());
    s.set_s088(value());
    s.set_s089(value());
    s.set_s090(value());
    s.set_s091(value());
    s.set_s092(value());
    s.set_s093(value());
    s.set_s094(value());
    s.set_s095(value());
    s.set_s096(value());
    s.set_s097(value());
    s.set_s098(value());
    s.set_s099(value());
    s.set_s100(value());
    s.set_s101(value());
    s.set_s102(value());
    s.set_s103(value());
    s.set_s104(value());
    s.set_s105(value());
    s.set_s106(value());
    s.set_s107(value());
    s.set_s108(value());
    s.set_s109(value());
    s.set_s110(value());
    s.set_s111(value());
    s.set_s112(value());
    s.set_s113(value());
    s.set_s114(value());
    s.set_s115(value());
    s.set_s116(value());
    s.set_s117(value());
    s.set_s118(value());
    s.set_s119(value());
    s.set_s120(value());
    s.set_s121(value());
    s.set_s122(value());
    s.set_s123(value());
    s.set_s124(value());
    s.set_s125(value());
    s.set_s126(value());
    s.set_s127(value());
    s.set_s128(value());
    s.set_s129(value());
    s.set_s130(value());
    s.set_s131(value());
    s.set_s132(value());
    s.set_s133(value());
    s.set_s134(value());
    s.set_s135(value());
    s.set_s136(value());
    s.set_s137(value());
    s.set_s138(value());
    s.set_s139(value());
    s.set_s140(value());
    s.set_s141(value());
    s.set_s142(value());
    s.set_s143(value());
    s.set_s144(value());
    s.set_s145(value());
    s.set_s146(value());
    s.set_s147(value());
    s.set_s148(value());
    s.set_s149(value());
    s.set_s150(value());
    s.set_s151(value());
    s.set_s152(value());
    s.set_s153(value());
    s.set_s154(value());
    s.set_s155(value());
    s.set_s156(value());
    s.set_s157(value());
    s.set_s158(value());
    s.set_s159(value());
    s.set_s160(value());
    s.set_s161(value());
    s.set_s162(value());
    s.set_s163(value());
    s.set_s164(value());
    s.set_s165(value());
    s.set_s166(value());
    s.set_s167(value());
    s.set_s168(value());
    s.set_s169(value());
    s.set_s170(value());
    s.set_s171(value());
    s.set_s172(value());
    s.set_s173(value());
    s.set_s174(value());
    s.set_s175(value());
    s.set_s176(value());
    s.set_s177(value());
    s.set_s178(value());
    s.set_s179(value());
    s.set_s180(value());
    s.set_s181(value());
    s.set_s182(value());
    s.set_s183(value());
    s.set_s184(value());
    s.set_s185(value());
    s.set_s186(value());
    s.set_s187(value());
    s.set_s188(value());
    s.set_s189(value());
    s.set_s190(value());
    s.set_s191(value());
    s.set_s192(value());
    s.set_s193(value());
    s.set_s194(value());
    s.set_s195(value());
    s.set_s196(value());
    s.set_s197(value());
    s.set_s198(value());
    s.set_s199(value());
}

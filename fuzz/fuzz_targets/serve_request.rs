//! `cae serve`'s request bodies: any bytes, to any route, as any content type, through the
//! one parser the handlers use (JSON, and PNG or JPEG uploads decoded within cae's limits):
//! a checked request or a one-line 4xx, never a panic.
#![no_main]

use cae::serve::{Request, Route, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = [Route::Analyze, Route::Decode, Route::Interpolate, Route::Inspect]
        [usize::from(selector % 4)];
    let media = ["application/json", "image/png", "image/jpeg", "text/plain", ""]
        [usize::from(selector / 4 % 5)];
    match parse_request(route, media, body) {
        Ok(Request::Analyze(pixels)) => {
            assert_eq!(pixels.len(), 784);
            assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        Ok(Request::Interpolate(r)) => assert!((1..=64).contains(&r.steps)),
        Ok(Request::Decode(_)) => {}
        Ok(Request::Inspect(img)) => assert!(img.width() > 0 && img.height() > 0),
        Err(e) => {
            assert!(e.status().is_client_error(), "{e:?}");
            assert!(!e.message().contains('\n'));
        }
    }
});

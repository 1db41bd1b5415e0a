//! The calendar poller against servers that misbehave on loopback: a server that accepts and never
//! answers runs into the request timeout (on tokio's paused clock, exactly), a closed port is
//! unreachable; each keeps the last good notices, names the URL and doubles the wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sip_failover::maintenance::icalendar::CalendarUrl;
use sip_failover::net::calendar::CalendarPoller;
use sip_failover::net::http::REQUEST_TIMEOUT;

fn calendar(start: Timestamp) -> String {
    let end = start.checked_add(SignedDuration::from_hours(1)).unwrap();
    let b = |t: Timestamp| t.strftime("%Y%m%dT%H%M%SZ").to_string();
    format!(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:cx-eu-1 upgrade\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
        b(start),
        b(end)
    )
}

/// Answers the first request with `body`, then accepts one more and stays silent until the client
/// leaves; the listener is closed (and the receiver told) once that second connection is in.
fn good_then_silent(body: String) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut listener = Some(listener);
        for i in 0..2 {
            let Some(Ok((mut stream, _))) = listener.as_ref().map(TcpListener::accept) else { continue };
            if i == 1 {
                listener = None;
                let _ = closed_tx.send(());
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // Bounded: the request's head.
            for _ in 0..100 {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            if i == 0 {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
            // Until the client closes (the silent one: when it gives up).
            let _ = reader.read(&mut [0u8; 1]);
        }
    });
    (addr, closed)
}

#[tokio::test]
async fn a_silent_server_and_a_closed_port_keep_the_last_good_notices() {
    let wall = Timestamp::now();
    let start = Timestamp::from_second(wall.as_second() + 3600).unwrap();
    let (addr, closed) = good_then_silent(calendar(start));
    let url = CalendarUrl::parse(&format!("http://{addr}/team.ics")).unwrap();
    let interval = Duration::from_secs(60);
    let mut poller = CalendarPoller::new(url, interval, None).unwrap();
    let fetch = poller.start().await;
    let good = poller.finish(fetch, &["cx-eu-1"], wall, tokio::time::Instant::now());
    assert_eq!(good.error, None);
    let notices = good.notices.expect("the first good poll gives notices");
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].start, start);
    assert_eq!(good.retry_in, interval);

    // Slow: the server accepts and says nothing; the request gives up after exactly REQUEST_TIMEOUT
    // of virtual time (the paused clock jumps to the timeout once nothing else can happen).
    tokio::time::pause();
    let before = tokio::time::Instant::now();
    let fetch = poller.start().await;
    // Tokio's timers tick in whole milliseconds, rounding a deadline up.
    let waited = tokio::time::Instant::now() - before;
    assert!(waited >= REQUEST_TIMEOUT && waited <= REQUEST_TIMEOUT + Duration::from_millis(1), "{waited:?}");
    let slow = poller.finish(fetch, &["cx-eu-1"], wall, tokio::time::Instant::now());
    assert_eq!(slow.error.as_deref(), Some(format!("http://{addr}/team.ics: no answer within 10 s").as_str()));
    assert_eq!(slow.retry_in, 2 * interval);
    assert!(slow.notices.is_none());
    assert_eq!(poller.notices(), Some(&notices[..]), "the last good notices stay");

    // Unreachable: nothing listens there any more; the wait doubles again. Real time again, so the
    // refusal arrives before the timeout.
    tokio::time::resume();
    closed.recv_timeout(Duration::from_secs(10)).unwrap();
    let fetch = poller.start().await;
    let gone = poller.finish(fetch, &["cx-eu-1"], wall, tokio::time::Instant::now());
    let e = gone.error.unwrap();
    assert!(e.starts_with(&format!("http://{addr}/team.ics: connect: ")), "{e}");
    assert_eq!(gone.retry_in, 4 * interval);
    assert_eq!(poller.notices(), Some(&notices[..]));
}

@testable import HulyNetCore
import XCTest

/// Leadership through etcd and the client's choice of coordinator, on a fake clock.
final class ElectionMachineTests: XCTestCase {
    let settings = ElectionMachine.Settings(ttlMs: 3000) // poll 250, margin 600, renew 1000, retry 200

    /// A standby that finds the key free and wins: it serves until the lease could first expire
    /// minus the margin, counted from when the grant was sent.
    private func leader(at now: Int64 = 0) -> ElectionMachine {
        var machine = ElectionMachine(settings: settings)
        XCTAssertEqual(machine.nextStep(now: now), .readKey)
        XCTAssertEqual(machine.keyRead(nil, now: now), [.leaderSeen(nil)])
        XCTAssertEqual(machine.nextStep(now: now), .grantLease(ttlSeconds: 3))
        XCTAssertEqual(machine.leaseGranted(7, ttlSeconds: 3, sentAt: now), [])
        XCTAssertEqual(machine.nextStep(now: now + 5), .campaign(lease: 7))
        XCTAssertEqual(machine.campaigned(won: true, holder: nil, sentAt: now + 5, now: now + 10),
                       [.startServing(untilMs: now + 2400)])
        return machine
    }

    func testSettingsDefaultsAndRanges() {
        XCTAssertEqual(settings.pollMs, 250)
        XCTAssertEqual(settings.marginMs, 600)
        XCTAssertEqual(settings.renewEveryMs, 1000)
        XCTAssertNoThrow(try settings.check())
        XCTAssertThrowsError(try ElectionMachine.Settings(ttlMs: 1500).check(), "etcd counts whole seconds")
        XCTAssertThrowsError(try ElectionMachine.Settings(ttlMs: 0).check())
        XCTAssertThrowsError(try ElectionMachine.Settings(ttlMs: 3000, marginMs: 2500).check(), "no room to renew")
    }

    func testWinsAFreeKeyAndRenewsBeforeTheDeadline() {
        var machine = leader()
        XCTAssertTrue(machine.isLeader)
        XCTAssertEqual(machine.nextStep(now: 500), .wait(untilMs: 1010))
        XCTAssertEqual(machine.nextStep(now: 1010), .keepAlive(lease: 7))
        XCTAssertEqual(machine.keptAlive(ttlSeconds: 3, sentAt: 1010, now: 1020), [.extend(untilMs: 3410)])
        // After each renewal the leader checks the key is still its own.
        XCTAssertEqual(machine.nextStep(now: 1020), .readKey)
        XCTAssertEqual(machine.keyRead(.init(value: "a", lease: 7), now: 1025), [])
        XCTAssertEqual(machine.nextStep(now: 1030), .wait(untilMs: 2020))
        XCTAssertEqual(machine.tick(now: 3000), [])
    }

    /// etcd unreachable: renewals fail and are retried; the leader stops serving at its deadline,
    /// which is before etcd can let the lease expire (the last successful send plus the TTL).
    func testFencedBeforeTheLeaseCanExpireWhenRenewalsFail() {
        var machine = leader()
        var now: Int64 = 1010
        var stoppedAt: Int64?
        while now < 5000, stoppedAt == nil {
            if case .keepAlive = machine.nextStep(now: now) {
                if !machine.failed(.keepAlive(lease: 7), now: now + 250).isEmpty { stoppedAt = now + 250 }
                now += 250
            }
            if stoppedAt == nil, !machine.tick(now: now).isEmpty { stoppedAt = now }
            now += 10
        }
        let stopped = try? XCTUnwrap(stoppedAt)
        XCTAssertNotNil(stopped)
        XCTAssertGreaterThanOrEqual(stopped ?? 0, 2400)
        XCTAssertLessThan(stopped ?? .max, 3000, "stopped before the lease (granted at 0, TTL 3 s) could expire")
        XCTAssertFalse(machine.isLeader)
    }

    /// A leader paused past its deadline steps down on its first tick after waking.
    func testPausedLeaderStepsDownOnWaking() {
        var machine = leader()
        let changes = machine.tick(now: 10_000)
        XCTAssertEqual(changes.count, 1)
        guard case .stopServing(let reason)? = changes.first else { return XCTFail("\(changes)") }
        XCTAssertTrue(reason.contains("before it could expire"), reason)
        // Back as a standby it reads the key, finds another leader and keeps off.
        XCTAssertEqual(machine.nextStep(now: 10_000), .readKey)
        XCTAssertEqual(machine.keyRead(.init(value: "b:2", lease: 9), now: 10_001), [.leaderSeen("b:2")])
        XCTAssertEqual(machine.nextStep(now: 10_002), .wait(untilMs: 10_251))
    }

    func testLeaseGoneOrKeyTakenStepsDown() {
        var machine = leader()
        XCTAssertEqual(machine.keptAlive(ttlSeconds: 0, sentAt: 1000, now: 1001),
                       [.stopServing(reason: "etcd says the lease expired")])
        XCTAssertFalse(machine.isLeader)
        XCTAssertEqual(machine.nextStep(now: 1001), .readKey)

        var other = leader()
        _ = other.keptAlive(ttlSeconds: 3, sentAt: 1000, now: 1001)
        XCTAssertEqual(other.keyRead(.init(value: "x", lease: 99), now: 1002),
                       [.stopServing(reason: "the leadership key is no longer held by this coordinator's lease")])
    }

    func testStandbyPollsAndCampaignsWhenTheKeyIsFree() {
        var machine = ElectionMachine(settings: settings)
        XCTAssertEqual(machine.keyRead(.init(value: "a:1", lease: 3), now: 0), [.leaderSeen("a:1")])
        XCTAssertEqual(machine.nextStep(now: 100), .wait(untilMs: 250))
        XCTAssertEqual(machine.nextStep(now: 250), .readKey)
        XCTAssertEqual(machine.keyRead(.init(value: "a:1", lease: 3), now: 250), [], "the same leader is said once")
        XCTAssertEqual(machine.keyRead(nil, now: 500), [.leaderSeen(nil)])
        XCTAssertEqual(machine.nextStep(now: 500), .grantLease(ttlSeconds: 3))
        _ = machine.leaseGranted(4, ttlSeconds: 3, sentAt: 500)
        // Lost the race to another standby: it keeps its lease for the next campaign.
        XCTAssertEqual(machine.campaigned(won: false, holder: .init(value: "c:3", lease: 5), sentAt: 501, now: 502),
                       [.leaderSeen("c:3")])
        XCTAssertEqual(machine.nextStep(now: 752), .readKey)
        _ = machine.keyRead(nil, now: 752)
        XCTAssertEqual(machine.nextStep(now: 752), .campaign(lease: 4))
        // Too close to the lease's end: a fresh one first.
        XCTAssertEqual(machine.nextStep(now: 1900), .grantLease(ttlSeconds: 3))
    }

    func testStopRevokesAndCouldNotServeGivesTheKeyUp() {
        var machine = leader()
        XCTAssertEqual(machine.stop(), [.stopServing(reason: "stopping")])
        XCTAssertEqual(machine.nextStep(now: 20), .revoke(lease: 7))
        machine.revoked()
        XCTAssertEqual(machine.nextStep(now: 30), .wait(untilMs: .max))

        var other = leader()
        other.couldNotServe(now: 20)
        XCTAssertFalse(other.isLeader)
        XCTAssertEqual(other.nextStep(now: 21), .revoke(lease: 7))
        other.revoked()
        XCTAssertEqual(other.nextStep(now: 22), .wait(untilMs: 270))
    }

    func testFailuresAsStandbyWaitAPoll() {
        var machine = ElectionMachine(settings: settings)
        XCTAssertEqual(machine.failed(.readKey, now: 0), [])
        XCTAssertEqual(machine.nextStep(now: 1), .wait(untilMs: 250))
    }

    // MARK: - LeaderFollower

    func testOneAddressNeverMoves() {
        var follower = LeaderFollower(count: 1, now: 0)
        follower.refused(now: 10)
        XCTAssertNil(follower.moveDue(now: 100_000))
        XCTAssertNil(follower.nextCheck(now: 0))
    }

    func testRefusalMovesAfterTheDwellAndWrapsAround() {
        var follower = LeaderFollower(count: 3, now: 0)
        follower.refused(now: 5)
        XCTAssertNil(follower.moveDue(now: 50))
        XCTAssertEqual(follower.nextCheck(now: 50), 100)
        XCTAssertEqual(follower.moveDue(now: 100), "connection refused")
        XCTAssertEqual(follower.move(now: 100), 1)
        XCTAssertNil(follower.moveDue(now: 150))
        XCTAssertEqual(follower.move(now: 200), 2)
        XCTAssertEqual(follower.move(now: 300), 0)
    }

    func testNoGreetingOrSilenceMoves() {
        var follower = LeaderFollower(count: 2, greetTimeoutMs: 2000, silenceTimeoutMs: 3000, now: 0)
        XCTAssertNil(follower.moveDue(now: 1999))
        XCTAssertEqual(follower.moveDue(now: 2000), "no greeting within 2000 ms")
        follower.greeted(now: 100)
        XCTAssertNil(follower.moveDue(now: 2500))
        follower.heard(now: 2000)
        XCTAssertNil(follower.moveDue(now: 4999))
        XCTAssertEqual(follower.moveDue(now: 5000), "silent for 3000 ms")
        // A greeted coordinator that drops the connection is tried again before moving on.
        follower.disconnected(now: 4000)
        XCTAssertNil(follower.moveDue(now: 4050))
        follower.refused(now: 4060)
        XCTAssertEqual(follower.moveDue(now: 4100), "connection refused")
    }
}

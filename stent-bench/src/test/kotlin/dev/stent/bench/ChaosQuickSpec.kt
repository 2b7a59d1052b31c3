package dev.stent.bench

import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.ints.shouldBeGreaterThan
import io.kotest.matchers.shouldBe

/** `scripts/chaos --quick`, on every build: real worker JVMs killed, frozen, and a PostgreSQL restart; and proof it can fail. */
class ChaosQuickSpec : FunSpec({
    for (store in listOf("sqlite", "postgres")) {
        test("the quick crash harness on $store loses no run, checkpoints no step twice, and explains every re-execution") {
            val summary = Chaos(ChaosConfig.QUICK).run(store)
            println(summary)
            summary.lost shouldBe 0
            summary.completed shouldBe summary.runs
            summary.duplicateCheckpoints shouldBe 0
            summary.finalWrites shouldBeGreaterThan 0 // the write log saw the checkpoints
            summary.unexplained shouldBe 0
            summary.disruptionsOnLeasedRuns shouldBe summary.disruptions // every kill and freeze hit a worker holding leases
            summary.ok shouldBe true
        }
    }

    test("the harness fails when healthy workers run finished steps again (memoization switched off)") {
        val summary = Chaos(ChaosConfig.BROKEN, BrokenVariant.MEMO_OFF).run("sqlite")
        println(summary)
        summary.unexplained shouldBeGreaterThan 0
        summary.ok shouldBe false
    }

    test("the harness fails when a final record is written twice (a store that overwrites)") {
        val summary = Chaos(ChaosConfig.BROKEN, BrokenVariant.OVERWRITE).run("sqlite")
        println(summary)
        summary.duplicateCheckpoints shouldBeGreaterThan 0
        summary.ok shouldBe false
    }
})

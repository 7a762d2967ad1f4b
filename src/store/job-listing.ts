/**
 * The job list, filtered and paged: newest first on (createdAt, _id), a page after a cursor, read
 * through an index whose equality prefix is the filter (see `ensureIndexes`), so a page costs the
 * same with 10,000 jobs as with 100. Also the chunk times a job's timeline reads.
 */
import type { Document } from "bson";
import type { ChunkDoc, JobDoc, JobMode, Store } from "./store.js";

export interface JobListFilter {
  config?: string | undefined;
  status?: JobDoc["status"] | undefined;
  mode?: JobMode | undefined;
}

/** Where the previous page ended: the last job's creation time and id. */
export interface JobListCursor {
  createdAt: Date;
  id: string;
}

/** The index a filter reads through: equality fields first, then (createdAt, _id) descending. */
export function jobListIndex(filter: JobListFilter): string {
  if (filter.config !== undefined && filter.status !== undefined) return "config_status_created_id";
  if (filter.config !== undefined && filter.mode !== undefined) return "config_mode_created_id";
  if (filter.config !== undefined) return "config_created_id";
  if (filter.status !== undefined) return "status_created_id";
  if (filter.mode !== undefined) return "mode_created_id";
  return "created_id";
}

/** One page of jobs, newest first, after `before` (exclusive). */
export async function listJobsPage(
  store: Store,
  filter: JobListFilter,
  page: { before?: JobListCursor | undefined; limit: number },
): Promise<JobDoc[]> {
  const query: Document = {};
  if (filter.config !== undefined) query.config = filter.config;
  if (filter.status !== undefined) query.status = filter.status;
  if (filter.mode !== undefined) query.mode = filter.mode;
  if (page.before) {
    // A range on the index's first sorted field (so the walk starts at the cursor, whatever page
    // this is), and the jobs of the cursor's own millisecond already shown left out.
    query.createdAt = { $lte: page.before.createdAt };
    query.$nor = [{ createdAt: page.before.createdAt, _id: { $gte: page.before.id } }];
  }
  return store.jobs
    .find(query, { hint: jobListIndex(filter) })
    .sort({ createdAt: -1, _id: -1 })
    .limit(page.limit)
    .toArray();
}

/** What a job's timeline reads of each chunk: its times and counts, nothing of its records. */
export type ChunkTiming = Pick<
  ChunkDoc,
  "chunk" | "status" | "done" | "sentAt" | "finishedAt" | "processedCount" | "failedCount"
>;

/**
 * A job's chunks in chunk order, only the fields its timeline needs: with 10,000 chunks the
 * status page reads their times, not their keys, errors and histories.
 */
export async function listChunkTimings(store: Store, jobId: string): Promise<ChunkTiming[]> {
  return store.chunks
    .find(
      { jobId },
      {
        projection: {
          _id: 0,
          chunk: 1,
          status: 1,
          done: 1,
          sentAt: 1,
          finishedAt: 1,
          processedCount: 1,
          failedCount: 1,
        },
      },
    )
    .sort({ chunk: 1 })
    .toArray();
}

package localbackend

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/noxrunner/nox/api"
)

// meta is the persisted metadata of one sandbox (meta/<key>.json).
type meta struct {
	SessionID    string    `json:"sessionId"`
	Key          string    `json:"key"`
	PodName      string    `json:"podName"`
	Image        string    `json:"image"`
	TTLSeconds   int32     `json:"ttlSeconds"`
	CreatedAt    time.Time `json:"createdAt"`
	LastActiveAt time.Time `json:"lastActiveAt"`
	CPUMilli     int64     `json:"cpuMilli"`
	MemoryBytes  int64     `json:"memoryBytes"`
	StorageBytes int64     `json:"storageBytes"`
	Pids         int64     `json:"pids"`
	// Network is the egress policy (network.egress); nil: none.
	Network *netSpec `json:"network,omitempty"`
}

func (m *meta) expiresAt() time.Time {
	return m.LastActiveAt.Add(time.Duration(m.TTLSeconds) * time.Second)
}

// load reads every metadata file; sandboxes start in state stopped.
// Unreadable files are logged and skipped (their workspaces are kept);
// sandbox directories without a metadata file (a crash during delete) are
// removed.
func (s *store) load() error {
	ents, err := os.ReadDir(filepath.Join(s.dataDir, "meta"))
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			if strings.HasPrefix(name, ".tmp-") {
				_ = os.Remove(filepath.Join(s.dataDir, "meta", name))
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dataDir, "meta", name))
		var m meta
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err == nil && (!api.ValidSessionID(m.SessionID) || m.Key != sandboxKey(m.SessionID) || name != m.Key+".json") {
			err = errors.New("inconsistent metadata")
		}
		if err != nil {
			s.log.Warn("skipping sandbox metadata", "file", name, "err", err)
			continue
		}
		if imaged, err := s.mountBoxFS(m.Key); err != nil {
			if !imaged {
				return fmt.Errorf("load %s: %w", m.SessionID, err)
			}
			s.log.Error("skipping sandbox: its storage cannot be mounted", "sessionId", m.SessionID, "err", err)
			continue
		}
		// Staging areas of uploads a crash interrupted.
		_ = os.RemoveAll(filepath.Join(s.boxDir(m.Key), "upload"))
		box := s.newBox(m)
		s.loadProcesses(box)
		s.loadPolicy(box)
		s.boxes[m.SessionID] = box
	}
	// Remove sandbox directories left without metadata.
	dirs, err := os.ReadDir(filepath.Join(s.dataDir, "sandboxes"))
	if err != nil {
		return fmt.Errorf("load sandboxes: %w", err)
	}
	// A key with a metadata file, even an unreadable one, keeps its directory.
	known := map[string]bool{}
	for _, e := range ents {
		if k, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			known[k] = true
		}
	}
	for _, d := range dirs {
		if !known[d.Name()] {
			s.log.Info("removing orphaned sandbox directory", "key", d.Name())
			if err := s.removeBoxDir(d.Name()); err != nil {
				s.log.Warn("removing orphaned sandbox directory", "key", d.Name(), "err", err)
			}
		}
	}
	return nil
}

// writeMeta persists the current metadata of the sandbox m describes
// atomically: temp file, fsync, rename (the directory is fsynced by the
// next flush). The current state, not m, is written, so that a flush
// never overwrites what saveMeta wrote since with an older snapshot. It
// does nothing when the sandbox was deleted meanwhile; when the write
// fails the sandbox is marked for the next flush.
func (s *store) writeMeta(m meta) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	b, ok := s.boxes[m.SessionID]
	gone := !ok || b.deleting || b.meta.Key != m.Key
	if !gone {
		m = b.meta
	}
	s.mu.Unlock()
	if gone {
		return nil
	}
	if err := s.writeMetaFile(m); err != nil {
		s.mu.Lock()
		b.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// saveMeta refreshes b's expiry, applies change (nil: none) to its
// metadata and writes it before updating the in-memory state, so that a
// failed write changes nothing. A sandbox deleted meanwhile is an
// ErrNotFound error. It returns the metadata saved.
func (s *store) saveMeta(b *box, change func(*meta)) (meta, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	if b.deleting {
		s.mu.Unlock()
		return meta{}, notFound(b.meta.SessionID)
	}
	m := b.meta
	s.mu.Unlock()
	m.LastActiveAt = s.now().UTC().Truncate(time.Millisecond)
	if change != nil {
		change(&m)
	}
	if err := s.writeMetaFile(m); err != nil {
		return meta{}, fmt.Errorf("sandbox %q: save metadata: %w", m.SessionID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Activity since the snapshot may have moved LastActiveAt further
	// (the next flush saves it); it never moves back.
	if b.meta.LastActiveAt.After(m.LastActiveAt) {
		m.LastActiveAt = b.meta.LastActiveAt
	}
	b.meta = m
	return m, nil
}

// writeMetaFile writes m's file; the caller makes sure nobody else writes it.
func (s *store) writeMetaFile(m meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.metaPath(m.Key), data); err != nil {
		return err
	}
	s.metaDirty.Store(true)
	return nil
}

// syncMetaDir makes the renames into meta/ durable.
func (s *store) syncMetaDir() {
	if !s.metaDirty.Swap(false) {
		return
	}
	if d, err := os.Open(filepath.Join(s.dataDir, "meta")); err == nil {
		if err := d.Sync(); err != nil {
			s.metaDirty.Store(true)
		}
		d.Close()
	}
}

// writeFileAtomic writes name through a fsynced temporary file and a
// rename. The directory is not fsynced: see store.syncMetaDir.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// flush writes the metadata of sandboxes whose expiry changed, so that a
// restart (even after kill -9) loses at most one ReaperInterval of activity.
func (s *store) flush() {
	s.mu.Lock()
	var dirty []meta
	for _, b := range s.boxes {
		if b.dirty && !b.deleting {
			b.dirty = false
			dirty = append(dirty, b.meta)
		}
	}
	s.mu.Unlock()
	for _, m := range dirty {
		if err := s.writeMeta(m); err != nil {
			s.log.Error("writing sandbox metadata", "sessionId", m.SessionID, "err", err)
		}
	}
	s.syncMetaDir()
}
